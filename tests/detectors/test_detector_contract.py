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


# -- scikit-learn's estimator protocol -------------------------------------------------
class _Params(_Mean):
    """_Mean with more parameters, in non-alphabetical order, and one that can nest."""

    name = "test-params"

    def __init__(self, *, sign: float = -1.0, alpha: int = 2, inner=None) -> None:
        self.sign = sign
        self.alpha = alpha
        self.inner = inner


def _sklearn_twin():
    """A plain scikit-learn estimator with _Params's __init__ (the reference behaviour)."""
    from sklearn.base import BaseEstimator, ClassifierMixin

    class _Params(ClassifierMixin, BaseEstimator):  # same name: same error messages
        def __init__(self, *, sign: float = -1.0, alpha: int = 2, inner=None) -> None:
            self.sign = sign
            self.alpha = alpha
            self.inner = inner

    return _Params


def test_get_params_and_set_params_match_base_estimator():
    pytest.importorskip("sklearn")
    from sklearn.base import clone, is_classifier
    from sklearn.linear_model import LogisticRegression

    Twin = _sklearn_twin()
    ours, ref = _Params(alpha=3, inner=LogisticRegression(C=2.0)), Twin(alpha=3, inner=LogisticRegression(C=2.0))
    for deep in (False, True):
        a, b = ours.get_params(deep=deep), ref.get_params(deep=deep)
        assert list(a) == list(b)  # same keys, same (sorted) order
        assert {k: v for k, v in a.items() if k != "inner"} == {k: v for k, v in b.items() if k != "inner"}
    assert "inner__C" in ours.get_params() and "inner__C" not in ours.get_params(deep=False)
    assert ours.get_params() == ours.get_params(deep=True)
    # set_params: plain, nested, returns self, same error for an unknown name
    assert ours.set_params(alpha=5, inner__C=0.5) is ours
    ref.set_params(alpha=5, inner__C=0.5)
    assert ours.alpha == ref.alpha == 5 and ours.inner.C == ref.inner.C == 0.5
    assert ours.set_params() is ours
    errors = []
    for est in (_Params(), Twin()):
        with pytest.raises(ValueError) as info:
            est.set_params(beta=1)
        errors.append(str(info.value).replace(repr(est), "EST"))
    assert errors[0] == errors[1] and "Valid parameters are: ['alpha', 'inner', 'sign']" in errors[0]
    # clone: a new, unfitted detector with equal parameters (the nested estimator cloned)
    X, y = make_synthetic_task(n=16, size=16)
    ours.fit(X, y)
    twin = clone(ours)
    assert type(twin) is _Params and not twin.is_fitted() and twin.inner is not ours.inner
    assert twin.alpha == 5 and twin.inner.get_params() == ours.inner.get_params()
    assert is_classifier(ours) and list(ours.classes_) == [0, 1]
    with pytest.raises(AttributeError):  # NotFittedError is one: hasattr() says False
        _Params().classes_
    assert not hasattr(_Params(), "classes_")
    # repr keeps the signature order; score is accuracy at threshold_
    assert repr(_Params()) == "_Params(sign=-1.0, alpha=2, inner=None)"
    assert ours.score(X, y) == pytest.approx(float((ours.predict(X) == y).mean()))


def test_sklearn_tags_and_fitted_check():
    pytest.importorskip("sklearn")
    from sklearn.exceptions import NotFittedError as SkNotFitted
    from sklearn.utils import get_tags
    from sklearn.utils.validation import check_is_fitted

    tags = get_tags(_Mean())
    assert tags.estimator_type == "classifier" and tags.target_tags.required
    assert not tags.classifier_tags.multi_class and not tags.input_tags.two_d_array
    with pytest.raises(SkNotFitted):
        check_is_fitted(_Mean())
    check_is_fitted(_Mean().fit(*make_synthetic_task(n=16, size=16)))


def test_importing_the_contract_does_not_import_sklearn():
    """The protocol is implemented without sklearn.base (a second on every `morphlab list`)."""
    import subprocess
    import sys

    code = "import sys, morphlab.detectors; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_model_selection_on_crop_arrays(tmp_path):
    """cross_val_score, GroupKFold by subject and GridSearchCV on an (N, H, W, 3) array."""
    pytest.importorskip("sklearn")
    from sklearn.model_selection import GridSearchCV, GroupKFold, StratifiedKFold, cross_val_score

    X, y = make_synthetic_task(n=32, size=32)
    det = create_detector("freq-logreg", size=32, grid=2, n_bins=8)
    cv = cross_val_score(det, X, y, cv=StratifiedKFold(2, shuffle=True, random_state=0),
                         scoring="roc_auc", error_score="raise")
    assert cv.shape == (2,) and (cv > 0.8).all()
    assert not det.is_fitted()  # cross_val_score fits clones
    groups = np.arange(32) % 4  # e.g. subject ids: folds never share one
    cv = cross_val_score(det, X, y, groups=groups, cv=GroupKFold(2), scoring="roc_auc",
                         error_score="raise")
    assert cv.shape == (2,)
    acc = cross_val_score(det, X, y, cv=2, error_score="raise")  # default: score = accuracy
    assert ((0 <= acc) & (acc <= 1)).all()
    search = GridSearchCV(det, {"C": [0.01, 1.0], "sigma": [1.0, 2.0]}, scoring="roc_auc", cv=2,
                          error_score="raise").fit(X, y)
    assert set(search.best_params_) == {"C", "sigma"} and len(search.cv_results_["params"]) == 4
    best = search.best_estimator_
    assert best.get_params()["C"] == search.best_params_["C"] and best.is_fitted()
    np.testing.assert_array_equal(search.decision_function(X), best.decision_function(X))
    best.save(tmp_path / "best")  # the refitted winner is an ordinary model folder
    np.testing.assert_array_equal(load_detector(tmp_path / "best").decision_function(X),
                                  best.decision_function(X))
    # the last step of a pipeline, its parameters reached as freqlogreg__C
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    pipe = make_pipeline(FunctionTransformer(lambda crops: np.ascontiguousarray(crops[:, :, ::-1])), det)
    search = GridSearchCV(pipe, {"freqlogreg__C": [0.01, 1.0]}, scoring="roc_auc", cv=2,
                          error_score="raise").fit(X, y)
    assert search.best_params_["freqlogreg__C"] in (0.01, 1.0)
    assert list(search.best_estimator_.classes_) == [0, 1]


def test_differential_detectors_take_pair_arrays():
    pytest.importorskip("sklearn")
    from sklearn.model_selection import cross_val_score

    P, y = make_synthetic_task("differential", n=16, size=32)  # (16, 2, 32, 32, 3)
    cv = cross_val_score(create_detector("embedding-diff", system="lbph"), P, y, cv=2,
                         scoring="roc_auc", error_score="raise")
    assert cv.shape == (2,) and np.isfinite(cv).all()


# -- what _fit and _get_state return ----------------------------------------------------
class _ReturnsSelf(_Mean):
    name = "test-returns-self"

    def _fit(self, X, y):
        super()._fit(X, y)
        return self  # "fit returns self": taken as None


class _ReturnsScores(_Mean):
    name = "test-returns-scores"

    def _fit(self, X, y):
        super()._fit(X, y)
        return self._decision_function(X).tolist()  # a list of N floats is fine too


def test_fit_hook_may_return_self_none_or_scores():
    X, y = make_synthetic_task(n=24, size=32)
    thresholds = {cls.__name__: cls().fit(X, y).threshold_ for cls in (_Mean, _ReturnsSelf, _ReturnsScores)}
    assert len(set(thresholds.values())) == 1, thresholds
    check_detector(_ReturnsSelf)


@pytest.mark.parametrize("returned, match", [
    ({"scores": 1}, r"_BadFit\._fit returned dict .*must return the \(N,\) training scores or None"),
    (np.zeros(3), r"_BadFit\._fit returned scores of shape \(3,\) for 24 inputs .*training scores or None"),
    (0.5, r"_BadFit\._fit returned scores of shape \(\) for 24 inputs"),
])
def test_a_bad_fit_return_names_the_class_and_what_to_return(returned, match):
    class _BadFit(_Mean):
        def _fit(self, X, y):
            super()._fit(X, y)
            return returned

    X, y = make_synthetic_task(n=24, size=32)
    det = _BadFit()
    with pytest.raises(RuntimeError, match=match):
        det.fit(X, y)
    assert not det.is_fitted()


@pytest.mark.parametrize("state, match", [
    ({"offset": 1.0}, r"_BadState\._get_state returned dict; it must return a pair \(state, arrays\)"),
    (({"offset": 1.0},), r"returned a 1-tuple of \(dict\); it must return a pair"),
    (({"offset": 1.0}, [np.zeros(2)]), r"a 2-tuple of \(dict, list\)"),
    (({"offset": 1.0}, {"w": np.array(["a"])}), r"array 'w' must be a numeric NumPy array, got ndarray of dtype <U1"),
    (({"model": slice(2)}, {}), r"not JSON-serialisable: slice in its parameters, _get_state dict"),
])
def test_a_bad_state_pair_names_the_class_and_the_expected_pair(state, match, tmp_path):
    class _BadState(_Mean):
        name = "test-bad-state"

        def _get_state(self):
            return state

    det = _BadState().fit(*make_synthetic_task(n=24, size=32))
    with pytest.raises(TypeError, match=match):
        det.save(tmp_path / "m")
    assert not (tmp_path / "m" / "detector.json").exists()


# -- the kit's failure messages state the contract ------------------------------------
class _ConvertsParam(_Mean):
    name = "test-converts"

    def __init__(self, *, sign: float = -1.0) -> None:
        self.sign = float(sign) * 1.0 if isinstance(sign, float) else -1.0


class _OldGetParams(_Mean):
    name = "test-old-get-params"

    def get_params(self):  # the pre-sklearn signature: clone and GridSearchCV break
        return {"sign": self.sign}


class _ForgetsState(_Mean):
    name = "test-forgets-state"

    def _set_state(self, state, arrays):
        self.offset_ = 0.0


class _Upside(_Mean):
    name = "test-upside-down"

    def _decision_function(self, X):
        return -super()._decision_function(X)


class _InitSetsState(_Mean):
    name = "test-init-state"

    def __init__(self, *, sign: float = -1.0) -> None:
        self.sign = sign
        self.threshold_ = 0.0  # a fitted attribute set in __init__


@pytest.mark.parametrize("cls, params, match", [
    (_ConvertsParam, {"sign": 1}, r"parameter 'sign' given as 1 reads back as -1.0; the contract "
                                  r"expects: __init__ takes keyword hyper-parameters only and stores each unchanged"),
    (_OldGetParams, None, r"get_params\(deep=\.\.\.\) failed .*do not override them"),
    (_ForgetsState, None, r"scores after save/load differ .*_get_state must return the pair \(state, arrays\)"),
    (_Upside, None, r"held-out AUC .* higher = more likely a morph"),
    (_InitSetsState, None, r"decision_function before fit: .*the contract expects NotFittedError"),
])
def test_kit_failures_say_what_the_contract_expects(cls, params, match):
    pytest.importorskip("sklearn")
    with pytest.raises(AssertionError, match=match):
        check_detector(cls, params)


def test_set_params_reaches_what_a_detector_built_from_its_parameters():
    """A cache built from a parameter follows set_params (GridSearchCV clones first, but
    a user may call set_params on a detector that has already built it)."""
    from morphlab.detectors.embedding_diff import EmbeddingDiff

    det = EmbeddingDiff(system="lbph")
    first = det._recognition()
    assert det._recognition() is first  # built once
    assert type(det.set_params(system="dlib-resnet")._recognition()).__name__ == "DlibResNet"
