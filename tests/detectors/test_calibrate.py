"""Thresholds that transfer: `detect calibrate` sets a model's threshold on held-out data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from morphlab.cli import main
from morphlab.detect import (
    CALIBRATED,
    TRAINING_DEER,
    build_presentations,
    calibrate_detector,
    calibration_threshold,
    score_files,
    threshold_origin,
)

pytest.importorskip("sklearn", reason="scikit-learn (morphlab[detect])")


# -- the operating point, on synthetic scores ------------------------------------------------
def test_threshold_at_bpcer_hand_checked():
    b = np.arange(10.0)  # bona fide 0 … 9
    a = np.array([8.5, 9.5, 10.0, 11.0])
    # BPCER 10 %: one bona fide (9) may be flagged; the gap (8, 8.5] -> its middle
    assert calibration_threshold(b, a) == 8.25
    assert calibration_threshold(b, a, bpcer=0.1) == 8.25
    assert calibration_threshold(b, a, bpcer=0.2) == 7.5  # 8 and 9 flagged; next score up is 8
    # APCER 25 %: one of four attacks (8.5) may pass; the gap (9, 9.5] -> 9.25
    assert calibration_threshold(b, a, apcer=0.25) == 9.25
    # only "everything bona fide" meets the target: just above the highest score
    t = calibration_threshold(np.ones(10), np.array([0.5, 1.0]), bpcer=0.05)
    assert t > 1.0 and t == np.nextafter(1.0, 2.0)


def test_threshold_is_the_best_point_meeting_the_target():
    """Against brute force over every threshold: BPCER <= target, lowest APCER (and the
    same for an APCER target)."""
    rng = np.random.default_rng(0)
    for _ in range(30):
        b = np.round(rng.normal(0, 1, rng.integers(5, 40)), 1)  # ties on purpose
        a = np.round(rng.normal(1.5, 1, rng.integers(5, 40)), 1)
        cands = np.concatenate([np.unique(np.concatenate([a, b])), [np.inf]])
        bp = np.array([(b >= t).mean() for t in cands])
        ap = np.array([(a < t).mean() for t in cands])
        for level in (0.05, 0.1, 0.3):
            t = calibration_threshold(b, a, bpcer=level)
            assert (b >= t).mean() <= level + 1e-12
            assert np.isclose((a < t).mean(), ap[bp <= level + 1e-12].min())
            t = calibration_threshold(b, a, apcer=level)
            assert (a < t).mean() <= level + 1e-12
            assert np.isclose((b >= t).mean(), bp[ap <= level + 1e-12].min())


def test_apcer_target_holds_for_every_species():
    b = np.arange(10.0)
    a = np.array([9.5, 10, 11, 12, 3, 20, 21, 22])
    sp = ["x"] * 4 + ["y"] * 4
    t = calibration_threshold(b, a, apcer=0.25, species=sp)
    for s in ("x", "y"):
        aa = a[np.asarray(sp) == s]
        assert (aa < t).mean() <= 0.25


@pytest.mark.parametrize("kw, match", [
    ({"bpcer": 0.1, "apcer": 0.1}, "not both"),
    ({"bpcer": 0.0}, "strictly between 0 and 1"),
    ({"apcer": 1.5}, "strictly between 0 and 1"),
])
def test_bad_targets(kw, match):
    with pytest.raises(ValueError, match=match):
        calibration_threshold([0.0, 1.0], [2.0], **kw)


# -- on the embedded sample: the library and the CLI ------------------------------------------
@pytest.fixture(scope="module")
def trained(split_sample, tmp_path_factory):
    tr = split_sample["train"]
    model = tmp_path_factory.mktemp("calib") / "model"
    r = CliRunner().invoke(main, ["detect", "train", "-d", "freq-logreg", "--bona-fide", str(tr["neutral"]),
                                  "--bona-fide", str(tr["smiling"]), "--attacks", str(tr["attacks"]),
                                  "--crop-size", "96", "-o", str(model), "--no-progress"])
    assert r.exit_code == 0, r.output
    return model


def _meta(model):
    return json.loads((model / "detector.json").read_text())


def test_training_records_where_its_threshold_came_from(trained, split_sample):
    th = _meta(trained)["metadata"]["threshold"]
    assert th["source"] == TRAINING_DEER and th["n_bona_fide"] == 12
    assert th["threshold"] == _meta(trained)["threshold"]
    assert "D-EER point of its own training scores" in threshold_origin(_meta(trained)["metadata"])
    r = CliRunner().invoke(main, ["detect", "score", str(trained), str(split_sample["test"]["attacks"]),
                                  "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "not calibrated on held-out data" in r.output


def test_calibrate_sets_records_and_is_used(trained, split_sample, tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(trained, model)
    te = split_sample["test"]
    before = _meta(model)["threshold"]
    cli = CliRunner()
    args = ["detect", "calibrate", str(model), "--bona-fide", str(te["neutral"]), "--bona-fide",
            str(te["smiling"]), "--attacks", str(te["attacks"]), "--no-progress"]
    r = cli.invoke(main, args + ["--bpcer", "0.1"])
    assert r.exit_code == 0, r.output
    doc = _meta(model)
    th = doc["metadata"]["threshold"]
    assert th["source"] == CALIBRATED and th["operating_point"] == "BPCER=10 %"
    assert th["subjects"] == sorted(te["subjects"]) and th["n_bona_fide"] == 12
    assert th["previous"] == {"source": TRAINING_DEER, "threshold": before}
    assert doc["threshold"] == th["threshold"] and doc["metadata"]["train"]  # training record kept
    assert f"at BPCER=10 % on 12 bona fide / {th['n_attack']} attacks (6 identities)" in r.output

    # the saved threshold is the operating point of the calibration scores, hand-checkable
    data = build_presentations([te["neutral"], te["smiling"]], [te["attacks"]])
    scores = {r["path"]: r["score"] for r in score_files(model, [it.path for it in data.items],
                                                          progress=False)}
    b = np.array([scores[str(it.path)] for it in data.items if it.label == 0])
    a = np.array([scores[str(it.path)] for it in data.items if it.label == 1])
    assert doc["threshold"] == pytest.approx(calibration_threshold(b, a, bpcer=0.1))
    assert (b >= doc["threshold"]).mean() <= 0.1
    assert th["achieved"]["BPCER"]["k"] == int((b >= doc["threshold"]).sum())

    # detect score decides with it and says where it came from
    r = cli.invoke(main, ["detect", "score", str(model), str(te["attacks"]), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert f"decision threshold {doc['threshold']:.6g}: calibrated at BPCER=10 %" in r.output
    for line in r.output.splitlines():
        if line[:1] in "+-" and line[1:2].isdigit():
            s = float(line.split()[0])
            assert ("bona fide" in line) == (s < doc["threshold"])
    # detect eval states it, and that the test identities were the calibration ones
    r = cli.invoke(main, ["detect", "eval", str(model), "--bona-fide", str(te["neutral"]),
                          "--attacks", str(te["attacks"]), "-o", str(tmp_path / "rep"), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "at the model's threshold" in r.output and "calibrated at BPCER=10 %" in r.output
    assert "the threshold was calibrated on 6 of these test identities" in r.output

    # APCER target; the new record replaces the old one and names its predecessor
    r = cli.invoke(main, args + ["--apcer", "0.2"])
    assert r.exit_code == 0, r.output
    th2 = _meta(model)["metadata"]["threshold"]
    assert th2["operating_point"] == "APCER=20 %" and th2["previous"]["source"] == CALIBRATED
    assert th2["achieved"]["APCER"]["rate"] <= 0.2


def test_calibration_refuses_training_identities(trained, split_sample, tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(trained, model)
    tr = split_sample["train"]
    before = (model / "detector.json").read_bytes()
    args = ["detect", "calibrate", str(model), "--bona-fide", str(tr["neutral"]),
            "--attacks", str(tr["attacks"]), "--no-progress"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1 and "share 6 identities with the training data" in r.output
    assert (model / "detector.json").read_bytes() == before  # untouched
    r = CliRunner().invoke(main, args + ["--allow-overlap"])
    assert r.exit_code == 0, r.output
    assert len(_meta(model)["metadata"]["threshold"]["shared_with_training"]) == 6
    r = CliRunner().invoke(main, args + ["--bpcer", "0.1", "--apcer", "0.1"])
    assert r.exit_code == 1 and "not both" in r.output


def test_calibration_replaces_only_what_morphlab_wrote(trained, split_sample, tmp_path):
    """A model folder saved outside `detect train` (no ownership record) is never rewritten."""
    from morphlab.detectors import load_detector
    from morphlab.outdir import ForeignFileError

    model = tmp_path / "saved"
    load_detector(trained).save(model)
    before = (model / "detector.json").read_bytes()
    te = split_sample["test"]
    data = build_presentations([te["neutral"]], [te["attacks"]])
    with pytest.raises(ForeignFileError, match="morphlab did not write"):
        calibrate_detector(model, data, progress=False)
    assert (model / "detector.json").read_bytes() == before
    # and image folders inside the model folder are refused before any work
    with pytest.raises(ValueError):
        calibrate_detector(trained, build_presentations([trained], [te["attacks"]]), progress=False)


def test_a_calibrated_threshold_states_its_rates_with_n_and_interval():
    from morphlab.metrics.intervals import rate

    meta = {"threshold": {"source": CALIBRATED, "operating_point": "BPCER=10 %",
                          "n_bona_fide": 10, "n_attack": 8, "subjects": ["001", "002"],
                          "achieved": {"BPCER": rate(1, 10).to_dict(),
                                       "APCER": rate(0, 8).to_dict()}}}
    assert threshold_origin(meta) == (
        "calibrated at BPCER=10 % on 10 bona fide / 8 attacks of 2 held-out identities "
        "(there: BPCER 10.0 % [1.8, 40.4] (1/10), APCER 0.0 % [0.0, 32.4] (0/8))")
