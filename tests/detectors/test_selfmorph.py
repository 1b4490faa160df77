"""Self-morph training: the synthetic attack (pure, seeded, local) and ``detect train --self-morph``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from morphlab.cli import main
from morphlab.detectors.selfmorph import (
    DEFAULT_STRENGTH,
    SELF_MORPH_SPECIES,
    face_region,
    face_scale,
    self_morph,
    self_morph_config,
    synthesise,
)


@pytest.fixture(scope="module")
def face(sample_faces):
    """A 300 px sample photo (half size, to keep the tests fast) and its dlib landmarks."""
    import cv2

    _, (img, f), _ = sample_faces[0]
    small = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return small, np.asarray(f.landmarks, np.float64) / 2.0


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_deterministic_per_seed(face):
    img, pts = face
    a = self_morph(img, pts, _rng(3))
    b = self_morph(img, pts, _rng(3))
    c = self_morph(img, pts, _rng(4))
    assert a.dtype == np.uint8 and a.shape == img.shape
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, img)
    assert img.flags.writeable and np.array_equal(img, face[0])  # input untouched


@pytest.mark.parametrize("strength", [{}, {"poisson": 1.0}, {"poisson": 0.0, "margin": 0.0},
                                      {"margin": 0.15, "mask_deform": 0.3, "max_shift": 0.1}])
def test_changes_only_the_face_region(face, strength):
    img, pts = face
    region = face_region(pts, (img.shape[1], img.shape[0]),
                         strength.get("margin", DEFAULT_STRENGTH["margin"]))
    assert 0.05 < region.mean() < 0.6
    changed_inside = 0
    for seed in range(4):
        out = self_morph(img, pts, _rng(seed), **strength)
        changed = np.any(out != img, axis=2)
        assert not changed[~region].any(), f"seed {seed}: pixels changed outside the face region"
        changed_inside += changed[region].mean()
    assert changed_inside / 4 > 0.3  # and a real change inside it


def test_geometry_stays_close(face):
    """Re-detected landmarks move by a bounded amount: an attack, not a new identity."""
    from morphlab.face.base import create_backend

    img, pts = face
    backend = create_backend("dlib")
    s = face_scale(pts)
    base = np.asarray(backend.detect(img)[0].landmarks)
    moves = []
    for seed in range(3):
        out = self_morph(img, pts, _rng(seed))
        moved = np.asarray(backend.detect(out)[0].landmarks)
        moves.append(np.linalg.norm(moved - base, axis=1))
    moves = np.array(moves)
    assert moves.mean() < 0.03 * s
    assert np.percentile(moves, 95) < (DEFAULT_STRENGTH["max_shift"] + 0.03) * s


def test_bad_inputs_are_refused(face):
    img, pts = face
    with pytest.raises(ValueError, match="RGB uint8"):
        self_morph(img.astype(np.float32), pts, _rng(0))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        self_morph(img, pts[:, :1], _rng(0))
    with pytest.raises(ValueError, match="unknown self-morph parameter.*valid: jitter"):
        self_morph(img, pts, _rng(0), wobble=1)
    with pytest.raises(ValueError, match="min_ratio"):
        self_morph(img, pts, _rng(0), min_ratio=2.0)
    with pytest.raises(ValueError, match="self-morph-ratio"):
        self_morph_config(ratio=0)


def test_synthesise_reproduces_from_the_config(face):
    import cv2

    img, pts = face
    crops = np.stack([img, cv2.flip(img, 1)])
    marks = [pts, np.c_[img.shape[1] - 1 - pts[:, 0], pts[:, 1]]]
    cfg = self_morph_config(ratio=1.5, seed=7, jitter=0.02)
    a, src = synthesise(crops, marks, cfg)
    b, _ = synthesise(crops, marks, json.loads(json.dumps(cfg)))  # as read back from detector.json
    assert a.shape == (3, *img.shape) and src.tolist() == [0, 1, 0]
    assert np.array_equal(a, b)
    assert not np.array_equal(a[0], a[2])  # same source, another draw
    assert cfg["params"]["jitter"] == 0.02 and cfg["seed"] == 7


# -- training through the CLI -------------------------------------------------------------------
def _train(args):
    return CliRunner().invoke(main, ["detect", "train", "--no-progress", *map(str, args)])


def test_cli_self_morph_only(split_sample, tmp_path):
    tr = split_sample["train"]
    out = tmp_path / "model"
    r = _train(["-d", "freq-logreg", "--bona-fide", tr["neutral"], "--bona-fide", tr["smiling"],
                "--self-morph", "--self-morph-ratio", "2", "--seed", "5",
                "--self-morph-param", "jitter=0.02", "-o", out])
    assert r.exit_code == 0, r.output
    assert f"{SELF_MORPH_SPECIES}: 24" in r.output
    meta = json.loads((out / "detector.json").read_text())["metadata"]["train"]
    assert meta["mode"] == "self-morph"
    assert meta["n_by_species"] == {"bona fide": 12, SELF_MORPH_SPECIES: 24}
    sm = meta["self_morph"]
    assert (sm["ratio"], sm["seed"], sm["n_synthetic"]) == (2.0, 5, 24)
    # --seed seeds the detector too
    assert json.loads((out / "detector.json").read_text())["params"]["random_state"] == 5
    assert sm["params"] == {**DEFAULT_STRENGTH, "jitter": 0.02}
    assert sorted(meta["subjects"]) == sorted(tr["subjects"])


def test_cli_both_modes_and_refusals(split_sample, tmp_path):
    tr = split_sample["train"]
    r = _train(["-d", "freq-logreg", "--bona-fide", tr["neutral"], "--attacks", tr["attacks"],
                "--self-morph", "-o", tmp_path / "both"])
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "both" / "detector.json").read_text())["metadata"]["train"]
    assert meta["mode"] == "both"
    assert {"landmark/complete", "landmark/spliced", SELF_MORPH_SPECIES} <= set(meta["n_by_species"])
    r = _train(["-d", "freq-logreg", "--bona-fide", tr["neutral"], "--attacks", tr["attacks"],
                "-o", tmp_path / "real"])
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "real" / "detector.json").read_text())["metadata"]["train"]
    assert meta["mode"] == "real" and "self_morph" not in meta
    # no attacks and no --self-morph: a usage error naming both ways out
    r = _train(["-d", "freq-logreg", "--bona-fide", tr["neutral"], "-o", tmp_path / "none"])
    assert r.exit_code == 2 and "--attacks" in r.output and "--self-morph" in r.output
    # a D-MAD detector: refused with one clear line, nothing written
    r = _train(["-d", "embedding-diff", "--bona-fide", tr["neutral"], "--live", tr["smiling"],
                "--self-morph", "-o", tmp_path / "dmad"])
    assert r.exit_code == 1 and "differential (D-MAD)" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "dmad").exists()
    r = _train(["-d", "freq-logreg", "--bona-fide", tr["neutral"], "--self-morph-ratio", "2",
                "--attacks", tr["attacks"], "-o", tmp_path / "x"])
    assert r.exit_code == 2 and "need --self-morph" in r.output


def test_self_morph_model_ranks_real_morphs_above_bona_fide(split_sample, tmp_path):
    """Weak but real: trained without any morph, it scores unseen identities' landmark
    morphs higher than their bona fide photos on average."""
    from morphlab.detect import build_presentations, prepare_inputs
    from morphlab.detectors.base import load_detector

    tr, te = split_sample["train"], split_sample["test"]
    out = tmp_path / "model"
    r = _train(["-d", "freq-logreg", "--bona-fide", tr["neutral"], "--bona-fide", tr["smiling"],
                "--self-morph", "--self-morph-ratio", "3", "-o", out])
    assert r.exit_code == 0, r.output
    det = load_detector(out)
    data = build_presentations([te["neutral"], te["smiling"]], [te["attacks"]])
    inp = prepare_inputs(data, det.kind, size=det.metadata_["preprocess"]["crop_size"], progress=False)
    scores = det.decision_function(inp.X)
    assert set(te["subjects"]).isdisjoint(det.metadata_["train"]["subjects"])
    assert scores[inp.y == 1].mean() > scores[inp.y == 0].mean()
    b, a = scores[inp.y == 0], scores[inp.y == 1]
    auc = (a[:, None] > b[None, :]).mean() + 0.5 * (a[:, None] == b[None, :]).mean()
    assert auc > 0.7, f"ROC AUC {auc:.2f} on {a.size} morphs / {b.size} bona fide"


#: Fast settings (same code paths): the cnn at 32 px, 2 epochs.
QUICK = {"cnn": {"epochs": 2, "width": 8, "input_size": 32}}


def _single_image_detectors() -> list[str]:
    from morphlab.detectors.base import DETECTORS, DIFFERENTIAL

    return [n for n in DETECTORS.names() if DETECTORS.get(n).kind != DIFFERENTIAL]


@pytest.mark.parametrize("name", _single_image_detectors())
def test_every_single_image_detector_trains_on_self_morphs(name, split_sample, tmp_path):
    """Any S-MAD (plug-ins included) trains on bona fide images alone and records the mode."""
    from morphlab.detect import build_presentations, train_detector
    from morphlab.detectors.base import load_detector

    pytest.importorskip("sklearn", reason="scikit-learn (morphlab[detect])")
    if name == "cnn":
        pytest.importorskip("torch", reason="the cnn detector needs PyTorch (morphlab[torch])")
    data = build_presentations([split_sample["train"]["neutral"]])
    s = train_detector(name, data, tmp_path / "m", params=QUICK.get(name), progress=False,
                       self_morph={"ratio": 1, "seed": 1})
    assert s["mode"] == "self-morph" and s["n_by_species"] == {"bona fide": 6, SELF_MORPH_SPECIES: 6}
    det = load_detector(tmp_path / "m")
    assert det.metadata_["train"]["self_morph"]["seed"] == 1
