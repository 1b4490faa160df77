"""deep-svm: FR-network features → SVM; and the progress bars of long fits."""

from __future__ import annotations

import json

import numpy as np
import pytest

from morphlab.detectors import create_detector, load_detector
from morphlab.detectors._progress import fit_progress, progress_enabled
from morphlab.detectors.testing import check_detector, make_synthetic_task

pytest.importorskip("sklearn", reason="scikit-learn (morphlab[detect])")


@pytest.fixture(scope="module")
def mobilefacenet(installed_model):
    return installed_model("mobilefacenet")


def test_conforms(mobilefacenet):
    from morphlab.detectors.deep_svm import DeepSvm

    assert check_detector(DeepSvm)["auc"] >= 0.8


def test_separates_sample_morphs_from_bona_fide(mobilefacenet, split_sample, tmp_path):
    """Trained on one half of the embedded sample, tested on the other (subject-disjoint)."""
    from morphlab.detect import build_presentations, evaluate_detector, train_detector

    tr, te = split_sample["train"], split_sample["test"]
    train = build_presentations([tr["neutral"], tr["smiling"]], [tr["attacks"]])
    train_detector("deep-svm", train, tmp_path / "model", progress=False)
    res = evaluate_detector(tmp_path / "model", build_presentations([te["neutral"], te["smiling"]],
                                                                   [te["attacks"]]), progress=False)
    m = res["metrics"]
    assert res["shared_identities"] == [] and m["n_bona_fide"] == 12 and m["n_attack"] >= 12
    assert m["D-EER"] < 0.3, m["D-EER"]  # chance is 0.5


def test_features_are_cached_per_crop(mobilefacenet, monkeypatch):
    from morphlab.detectors import deep_svm

    X, _ = make_synthetic_task(n=8, size=48, seed=7)
    det = create_detector("deep-svm")
    calls = []
    real = deep_svm.DeepSvm._extract
    monkeypatch.setattr(deep_svm.DeepSvm, "_extract", lambda self, c: calls.append(len(c)) or real(self, c))
    f1 = det.features(X)
    f2 = det.features(np.concatenate([X[::-1], X[:1]]))
    assert sum(calls) == 8  # the second call embeds nothing again
    assert np.array_equal(f2[:8], f1[::-1]) and f1.shape == (8, 192 + 2 * 128)  # emb + block4
    other = create_detector("deep-svm", layers=["stem"])  # another feature set: computed afresh
    assert other.features(X[:2]).shape == (2, 192 + 128) and sum(calls) == 10


@pytest.mark.parametrize("params, match", [
    ({"layers": ["nope"]}, "unknown layer 'nope'"),
    ({"systems": [], "layers": []}, "no features"),
    ({"systems": "mobilefacenet"}, "lists of names"),
])
def test_bad_feature_sets(params, match):
    X, y = make_synthetic_task(n=8, size=32)
    with pytest.raises(ValueError, match=match):
        create_detector("deep-svm", **params).fit(X, y)


def test_refuses_a_model_of_another_system_version(mobilefacenet, tmp_path):
    X, y = make_synthetic_task(n=16, size=48)
    det = create_detector("deep-svm", layers=[]).fit(X, y)
    det.save(tmp_path / "m")
    doc = json.loads((tmp_path / "m" / "detector.json").read_text())
    assert doc["state"]["system_versions"] == {"mobilefacenet": det.system_versions()["mobilefacenet"]}
    doc["state"]["system_versions"]["mobilefacenet"] = "mobilefacenet:other"
    (tmp_path / "m" / "detector.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="retrain it"):
        load_detector(tmp_path / "m")


# -- progress bars of long fits ----------------------------------------------------------------
def test_fit_progress_context():
    assert progress_enabled()
    with fit_progress(False):
        assert not progress_enabled()
        with fit_progress(True):
            assert progress_enabled()
        assert not progress_enabled()
    assert progress_enabled()


def test_cnn_fit_shows_its_progress_unless_hidden(capsys):
    pytest.importorskip("torch", reason="the cnn detector needs PyTorch (morphlab[torch])")
    X, y = make_synthetic_task(n=12, size=32)
    params = {"epochs": 2, "width": 4, "input_size": 32, "batch_size": 4}
    create_detector("cnn", **params).fit(X, y)
    err = capsys.readouterr().err
    assert "training cnn" in err and "6/6" in err and "epoch=2/2" in err  # 2 epochs x 3 batches
    with fit_progress(False):
        create_detector("cnn", **params).fit(X, y)
    assert "training cnn" not in capsys.readouterr().err


def test_detect_train_no_progress_hides_the_fit_bar(split_sample, tmp_path, capfd):
    pytest.importorskip("torch", reason="the cnn detector needs PyTorch (morphlab[torch])")
    from click.testing import CliRunner

    from morphlab.cli import main

    tr = split_sample["train"]
    args = ["detect", "train", "-d", "cnn", "-p", "epochs=1", "-p", "width=4", "-p", "input_size=32",
            "--bona-fide", str(tr["neutral"]), "--attacks", str(tr["attacks"]), "--crop-size", "48"]
    r = CliRunner().invoke(main, args + ["-o", str(tmp_path / "a"), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "training cnn" not in r.output + capfd.readouterr().err
    r = CliRunner().invoke(main, args + ["-o", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    assert "training cnn" in r.output + capfd.readouterr().err


def test_a_fitted_model_pickles_for_worker_processes(mobilefacenet):
    """joblib (GridSearchCV(n_jobs=2)) pickles estimators: the networks are left out and
    reloaded on use."""
    import pickle

    X, y = make_synthetic_task(n=16, size=48)
    det = create_detector("deep-svm").fit(X, y)
    back = pickle.loads(pickle.dumps(det))
    assert np.array_equal(back.decision_function(X), det.decision_function(X))
