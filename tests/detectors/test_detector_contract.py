"""The detector contract: registry, input validation, model folders, the conformance kit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from morphlab.detectors import base
from morphlab.detectors.base import (
    DETECTORS,
    NotFittedError,
    SingleImageDetector,
    create_detector,
    load_detector,
    read_model_info,
)
from morphlab.detectors.testing import auc, check_detector, make_synthetic_task

#: Fast settings for the conformance kit (same code paths, less work).
QUICK_PARAMS = {
    "cnn": {"epochs": 4, "width": 8, "input_size": 32},
    "embedding-diff": {"system": "lbph"},  # dlib-resnet runs on real photos in test_detect.py
}
BUILTINS = {"lbp-svm", "freq-logreg", "cnn", "embedding-diff"}


@pytest.mark.parametrize("name", DETECTORS.names())
def test_every_registered_detector_conforms(name):
    """The conformance kit over the whole registry (plug-ins included)."""
    if name == "cnn":
        pytest.importorskip("torch", reason="the cnn detector needs PyTorch (morphlab[torch])")
    pytest.importorskip("sklearn", reason="scikit-learn (morphlab[detect])")
    result = check_detector(DETECTORS.get(name), QUICK_PARAMS.get(name))
    assert result["auc"] >= 0.8


def test_registry_and_factory():
    assert BUILTINS <= set(DETECTORS.names())
    det = create_detector("freq-logreg", C=3.0)
    assert det.get_params()["C"] == 3.0
    assert type(create_detector(type(det))) is type(det)
    with pytest.raises(KeyError, match="valid names: .*lbp-svm"):
        create_detector("no-such-detector")
    with pytest.raises(ValueError, match="already registered"):
        base.register_detector("lbp-svm")(type("Other", (SingleImageDetector,), {}))


class _Mean(SingleImageDetector):
    """Minimal detector: score = -(mean grain energy); tests the base class alone."""

    name = "test-mean"

    def __init__(self, *, sign: float = -1.0) -> None:
        self.sign = sign

    def _fit(self, X, y):
        self.offset_ = float(self._raw(X).mean())
        return None

    def _raw(self, X):
        d = np.diff(X.astype(np.float64), axis=2)
        return self.sign * (d * d).mean(axis=(1, 2, 3))

    def _decision_function(self, X):
        return self._raw(X) - self.offset_

    def _get_state(self):
        return {"offset": self.offset_}, {}

    def _set_state(self, state, arrays):
        self.offset_ = state["offset"]


def test_base_class_behaviour(tmp_path):
    X, y = make_synthetic_task(n=24, size=32)
    det = _Mean()
    with pytest.raises(NotFittedError, match="not fitted"):
        det.predict(X)
    assert det.fit(X, y) is det
    s = det.decision_function(list(X))  # a list of crops works like the stacked array
    assert s.shape == (24,) and s.dtype == np.float64
    assert auc(s[y == 0], s[y == 1]) > 0.9
    # the initial threshold lies at the training D-EER point (see test_initial_threshold)
    np.testing.assert_array_equal(det.predict(X), (s >= det.threshold_).astype(int))
    det.set_threshold(1e9)
    assert not det.predict(X).any()
    det.metadata_ = {"note": "hello"}
    det.save(tmp_path / "m")
    back = _Mean.load(tmp_path / "m")
    assert back.threshold_ == 1e9 and back.metadata_ == {"note": "hello"}
    assert back.n_train_ == {"bona_fide": 12, "morph": 12}
    check_detector(_Mean)


def test_initial_threshold():
    y = np.array([0, 0, 1, 1])
    # separable: D-EER point t = 1.0 (lowest attack), midway to the bona fide -1.0 → 0
    assert base.initial_threshold(np.array([-1.2, -1.0, 1.0, 1.5]), y) == 0.0
    # overlapping (the hand-worked case of tests/metrics/test_pad.py): t = 0.4 → (0.35+0.4)/2
    s = np.array([0.1, 0.2, 0.3, 0.4, 0.35, 0.5, 0.6, 0.7, 0.8])
    assert base.initial_threshold(s, np.array([0] * 4 + [1] * 5)) == pytest.approx(0.375)


@pytest.mark.parametrize(
    "labels, match",
    [(None, "needs labels"), ([0] * 24, "single class.*bona fide"), ([1] * 24, "single class.*morphs"),
     ([0, 1] * 11, "labels of shape"), ([0, 2] * 12, "0 \\(bona fide\\) or 1"),
     (["a", "b"] * 12, "0 \\(bona fide\\) or 1")],
)
def test_bad_labels(labels, match):
    X, _ = make_synthetic_task(n=24, size=32)
    with pytest.raises(ValueError, match=match):
        _Mean().fit(X, labels)


def test_bad_inputs():
    X, y = make_synthetic_task(n=8, size=32)
    det = _Mean()
    with pytest.raises(ValueError, match="RGB uint8"):
        det.fit(X.astype(np.float32), y)
    with pytest.raises(ValueError, match="one size"):
        det.fit([X[0], X[1, :16, :16]] * 4, y)
    with pytest.raises(ValueError, match="no images"):
        det.fit([], [])
    with pytest.raises(ValueError, match="sequence of aligned face crops"):
        det.fit("faces/", y)
    with pytest.raises(ValueError, match="suspected, live"):
        base.check_pairs([X[0], X[1]])
    P, _ = make_synthetic_task("differential", n=8, size=32)
    assert base.check_pairs([(p[0], p[1]) for p in P]).shape == (8, 2, 32, 32, 3)


def test_model_folder_errors(tmp_path):
    X, y = make_synthetic_task(n=24, size=32)
    with pytest.raises(FileNotFoundError, match="not a detector model folder"):
        read_model_info(tmp_path)
    (tmp_path / "detector.json").write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="not a morphlab detector model"):
        read_model_info(tmp_path)
    folder = tmp_path / "m"
    _Mean().fit(X, y).save(folder)
    # not registered: load_detector refuses rather than importing the recorded class
    with pytest.raises(ValueError, match="not installed"):
        load_detector(folder)
    # another detector's folder
    pytest.importorskip("sklearn")
    other = tmp_path / "o"
    create_detector("freq-logreg").fit(X, y).save(other)
    with pytest.raises(ValueError, match="saved by detector 'freq-logreg', not 'test-mean'"):
        _Mean.load(other)
    assert type(load_detector(other)).__name__ == "FreqLogReg"
    # tampered arrays
    doc = json.loads((other / "detector.json").read_text())
    (other / "detector.json").write_text(json.dumps({**doc, "arrays_sha256": "0" * 64}))
    with pytest.raises(ValueError, match="checksum"):
        load_detector(other)


def test_kernel_svm_matches_scikit_learn():
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    from morphlab.detectors._sklearn import KernelSVM, LinearModel

    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 6))
    y = (X[:, 0] + 0.5 * X[:, 1] ** 2 + rng.normal(0, 0.3, 80) > 0.5).astype(int)
    T = rng.normal(size=(20, 6))
    for kernel in ("rbf", "linear"):
        mine = KernelSVM.fit(X, y, C=2.0, kernel=kernel, gamma="scale", random_state=0)
        ref = SVC(C=2.0, kernel=kernel, gamma="scale", class_weight="balanced").fit(X, y)
        np.testing.assert_allclose(mine.decision(T), ref.decision_function(T), rtol=1e-9, atol=1e-9)
    lm = LinearModel.fit_logistic(X, y, C=1.0, random_state=0)
    ref = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000).fit(X, y)
    np.testing.assert_allclose(lm.decision(T), ref.decision_function(T), rtol=1e-9, atol=1e-9)


def test_cnn_initialises_from_local_weights(tmp_path):
    torch = pytest.importorskip("torch")
    from morphlab.detectors.cnn import CnnDetector, build_network

    torch.manual_seed(123)
    donor = build_network("resnet18")
    sd = {k: v for k, v in donor.state_dict().items() if not k.startswith("fc.")}
    torch.save(sd, tmp_path / "backbone.pth")
    det = CnnDetector(arch="resnet18", init_weights=str(tmp_path / "backbone.pth"))
    net = build_network("resnet18")
    det._load_init(net)
    assert torch.equal(net.state_dict()["layer3.1.conv2.weight"], sd["layer3.1.conv2.weight"])
    np.savez(tmp_path / "unrelated.npz", foo=np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="no parameter matches"):
        CnnDetector(init_weights=str(tmp_path / "unrelated.npz"))._load_init(build_network("small"))
    with pytest.raises(FileNotFoundError):
        CnnDetector(init_weights=str(tmp_path / "missing.pth")).fit(*make_synthetic_task(n=8, size=32))
    # training seeds its own RNG and leaves the caller's alone
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    CnnDetector(epochs=1, width=4, input_size=16).fit(*make_synthetic_task(n=8, size=16))
    assert torch.equal(torch.rand(3), expected)
