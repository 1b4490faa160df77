"""Data safety and one-line errors of `morphlab detect` and of detector model folders.

Model folders are never replaced without --overwrite, and --overwrite removes only what
morphlab wrote; output folders are disjoint from the inputs and locked while written;
morphs are checked against their manifest's sha256; unreadable images are told apart
from faceless ones; damaged model files and weight files give one line naming the file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from morphlab.cli import main
from morphlab.detect import attack_presentations, bona_fide_presentations, evaluate_detector, train_detector
from morphlab.detectors.base import create_detector, load_detector
from morphlab.detectors.testing import make_synthetic_task
from morphlab.outdir import FolderLockedError, ForeignFileError, OutputExistsError, owned_files

pytest.importorskip("sklearn", reason="scikit-learn (morphlab[detect])")

FAST = {"size": 48, "grid": 2, "n_bins": 8}  # freq-logreg, small and quick
CROP = 64


def _train_data(half):
    return bona_fide_presentations([half["neutral"], half["smiling"]]) + \
        attack_presentations([half["attacks"]], variants=["complete"])


def _test_data(half):
    return bona_fide_presentations([half["neutral"], half["smiling"]]) + attack_presentations([half["attacks"]])


def _one_error_line(output: str) -> str:
    errors = [ln for ln in output.splitlines() if ln.startswith("Error: ")]
    assert len(errors) == 1 and "Traceback" not in output, output
    return errors[0]


@pytest.fixture(scope="module")
def trained(split_sample, tmp_path_factory) -> Path:
    """A small freq-logreg model of the training half (copy it before changing it)."""
    model = tmp_path_factory.mktemp("safety") / "model"
    train_detector("freq-logreg", _train_data(split_sample["train"]), model, params=FAST,
                   crop_size=CROP, progress=False)
    return model


# -- item 5: never replace a model or report without --overwrite; keep the user's files ---------
def test_train_refuses_to_replace_and_overwrite_keeps_user_files(split_sample, tmp_path):
    data = _train_data(split_sample["train"])
    model = tmp_path / "model"
    train_detector("freq-logreg", data, model, params=FAST, crop_size=CROP, progress=False)
    assert set(owned_files(model)) == {"detector.json", "arrays.npz"}
    first = (model / "detector.json").read_bytes()
    (model / "notes.txt").write_text("my notes")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        train_detector("freq-logreg", data, model, params={**FAST, "C": 0.5}, crop_size=CROP,
                       progress=False)
    assert (model / "detector.json").read_bytes() == first
    train_detector("freq-logreg", data, model, params={**FAST, "C": 0.5}, crop_size=CROP,
                   progress=False, overwrite=True)
    assert json.loads((model / "detector.json").read_text())["params"]["C"] == 0.5
    assert (model / "notes.txt").read_text() == "my notes"
    # an --overwrite that fails (every bona fide image unreadable) keeps the previous model
    second = (model / "detector.json").read_bytes()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "001_01.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="no bona fide presentation could be used"):
        train_detector("freq-logreg", bona_fide_presentations([bad]) + attack_presentations(
            [split_sample["train"]["attacks"]]), model, params=FAST, crop_size=CROP, progress=False,
            overwrite=True)
    assert (model / "detector.json").read_bytes() == second
    assert set(owned_files(model)) == {"detector.json", "arrays.npz"}

    # a detector.json morphlab did not write (or one edited since) is never replaced
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "detector.json").write_text('{"mine": true}\n')
    with pytest.raises(ForeignFileError, match="detector.json"):
        train_detector("freq-logreg", data, foreign, params=FAST, crop_size=CROP, progress=False,
                       overwrite=True)
    assert (foreign / "detector.json").read_text() == '{"mine": true}\n'
    with open(model / "detector.json", "a") as fh:
        fh.write(" ")
    with pytest.raises(ForeignFileError):
        train_detector("freq-logreg", data, model, params=FAST, crop_size=CROP, progress=False,
                       overwrite=True)

    # the CLI: one line, exit 1
    cli = CliRunner()
    args = ["detect", "train", "-d", "freq-logreg", "--bona-fide", str(split_sample["train"]["neutral"]),
            "--attacks", str(split_sample["train"]["attacks"]), "--crop-size", str(CROP),
            "-p", "size=48", "-p", "grid=2", "-p", "n_bins=8", "--no-progress", "-o"]
    r = cli.invoke(main, args + [str(foreign), "--overwrite"])
    assert r.exit_code == 1 and "refusing to replace detector.json" in _one_error_line(r.output)
    fresh = tmp_path / "fresh"
    assert cli.invoke(main, args + [str(fresh)]).exit_code == 0
    r = cli.invoke(main, args + [str(fresh)])
    assert r.exit_code == 1 and "pass --overwrite" in _one_error_line(r.output)
    assert cli.invoke(main, args + [str(fresh), "--overwrite"]).exit_code == 0


def test_eval_report_folder_rules(split_sample, trained, tmp_path):
    test = _test_data(split_sample["test"])
    report = tmp_path / "report"
    evaluate_detector(trained, test, report, progress=False)
    assert {"report.html", "scores.csv", "metrics.json"} <= set(owned_files(report))
    (report / "my.txt").write_text("keep")
    with pytest.raises(OutputExistsError):
        evaluate_detector(trained, test, report, progress=False)
    evaluate_detector(trained, test, report, progress=False, overwrite=True)
    assert (report / "my.txt").read_text() == "keep"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.html").write_text("<p>my report</p>")
    with pytest.raises(ForeignFileError, match="report.html"):
        evaluate_detector(trained, test, mine, progress=False, overwrite=True)
    assert (mine / "report.html").read_text() == "<p>my report</p>"


# -- item 3: outputs disjoint from the inputs ---------------------------------------------------
def test_outputs_must_not_overlap_the_inputs(split_sample, trained, tmp_path):
    tr, te = split_sample["train"], split_sample["test"]
    attacks = tmp_path / "attacks"
    shutil.copytree(tr["attacks"], attacks)
    data = bona_fide_presentations([tr["neutral"]]) + attack_presentations([attacks])
    before = sorted(p.name for p in attacks.iterdir())
    for out in (attacks, attacks / "model"):
        with pytest.raises(ValueError, match=r"output folder .*(is|inside) the folder of training images"):
            train_detector("freq-logreg", data, out, params=FAST, crop_size=CROP, progress=False)
    assert sorted(p.name for p in attacks.iterdir()) == before
    model = tmp_path / "model"
    shutil.copytree(trained, model)
    with pytest.raises(ValueError, match="inside the model folder"):
        evaluate_detector(model, _test_data(te), model / "report", progress=False)
    with pytest.raises(ValueError, match="is the model folder"):
        evaluate_detector(model, _test_data(te), model, progress=False)


# -- item 4: one writer per folder ----------------------------------------------------------------
def test_a_locked_model_folder_is_refused(split_sample, tmp_path):
    model = tmp_path / "model"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys\nfrom morphlab.outdir import locked_folder\n"
         f"with locked_folder({str(model)!r}):\n    print('locked', flush=True)\n    sys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"  # synchronise on its output
        with pytest.raises(FolderLockedError, match=f"pid {holder.pid}"):
            train_detector("freq-logreg", _train_data(split_sample["train"]), model, params=FAST,
                           crop_size=CROP, progress=False)
        r = CliRunner().invoke(main, [
            "detect", "train", "-d", "freq-logreg", "--bona-fide", str(split_sample["train"]["neutral"]),
            "--attacks", str(split_sample["train"]["attacks"]), "-o", str(model), "--no-progress"])
        assert r.exit_code == 1 and "another morphlab process" in _one_error_line(r.output)
    finally:
        holder.communicate("")
    assert not (model / "detector.json").exists()


# -- item 11: morphs checked against their manifest -----------------------------------------------
def test_a_tampered_morph_is_named(split_sample, tmp_path):
    attacks = tmp_path / "attacks"
    shutil.copytree(split_sample["train"]["attacks"], attacks)
    victim = sorted(attacks.glob("*.jpg"))[0]
    victim.write_bytes(victim.read_bytes() + b"\0")  # still a valid JPEG
    with pytest.raises(ValueError, match=f"{victim.name} does not match its recorded sha256"):
        attack_presentations([attacks])
    cli = CliRunner()
    for cmd in (["detect", "train", "-d", "freq-logreg", "-o", str(tmp_path / "m")],
                ["detect", "eval", str(tmp_path), "-o", str(tmp_path / "r")]):  # manifests first
        r = cli.invoke(main, cmd + ["--bona-fide", str(split_sample["train"]["neutral"]),
                                    "--attacks", str(attacks), "--no-progress"])
        line = _one_error_line(r.output)
        assert r.exit_code == 1 and victim.name in line and "manifest.jsonl, line" in line


# -- items 10 and 13: unreadable images, exit status -------------------------------------------------
def test_score_tells_unreadable_from_no_face_and_exits_1_when_nothing_scored(
        split_sample, trained, no_face_image, tmp_path):
    (tmp_path / "imgs").mkdir()
    garbage = tmp_path / "imgs" / "001_garbage.jpg"
    garbage.write_bytes(b"this is not a JPEG" * 10)
    morph = sorted(split_sample["test"]["attacks"].glob("*.jpg"))[0]
    cli = CliRunner()
    r = cli.invoke(main, ["detect", "score", str(trained), str(garbage), "--no-progress"])
    assert r.exit_code == 1
    assert any(ln.startswith(f"unreadable: {garbage}") for ln in r.output.splitlines()), r.output
    assert "no face" not in r.output
    assert "nothing could be scored: 1 unreadable (of 1 images)" in _one_error_line(r.output)

    r = cli.invoke(main, ["detect", "score", str(trained), str(garbage), str(no_face_image),
                          str(morph), "--no-progress"])
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.output.splitlines() if not ln.startswith(("WARNING", "decision threshold"))]
    assert lines[-1] == "2 of 3 images not scored (1 no face, 1 unreadable)"
    assert lines[0].startswith("unreadable: ") and lines[1].startswith("no face: ")

    # the CSV never replaces an input image
    r = cli.invoke(main, ["detect", "score", str(trained), str(morph), "--csv", str(morph), "--no-progress"])
    assert r.exit_code == 1 and "one of the input images" in r.output
    assert morph.read_bytes()[:2] == b"\xff\xd8"

    # training with one unreadable image: exit 0, what was left out on the last line
    listed = tmp_path / "bona_fide.txt"
    listed.write_text(split_sample["train"]["neutral"].read_text() + f"{garbage}\n")
    r = cli.invoke(main, ["detect", "train", "-d", "freq-logreg", "--bona-fide", str(listed),
                          "--attacks", str(split_sample["train"]["attacks"]), "--crop-size", str(CROP),
                          "-p", "size=48", "-p", "grid=2", "-p", "n_bins=8",
                          "-o", str(tmp_path / "partial"), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert r.output.strip().splitlines()[-1] == "left out: 1 unreadable (listed in detector.json)"
    train_meta = json.loads((tmp_path / "partial" / "detector.json").read_text())["metadata"]["train"]
    assert train_meta["n_unreadable"] == 1 and str(garbage) in train_meta["unreadable_examples"][0]

    # training on nothing readable: exit 1, the reason counted
    bad = tmp_path / "bad"
    bad.mkdir()
    for s in ("001", "002"):
        (bad / f"{s}_01.jpg").write_bytes(b"garbage")
    r = cli.invoke(main, ["detect", "train", "-d", "freq-logreg", "--bona-fide", str(bad),
                          "--attacks", str(split_sample["train"]["attacks"]), "-o", str(tmp_path / "m"),
                          "--no-progress"])
    assert r.exit_code == 1, r.output
    assert "no bona fide presentation could be used (2 unreadable)" in _one_error_line(r.output)


def test_unknown_face_backend_is_named(split_sample, trained, tmp_path):
    r = CliRunner().invoke(main, ["detect", "train", "-d", "freq-logreg", "--landmarks", "nope",
                                  "--bona-fide", str(split_sample["train"]["neutral"]),
                                  "--attacks", str(split_sample["train"]["attacks"]),
                                  "-o", str(tmp_path / "m"), "--no-progress"])
    assert r.exit_code == 1 and "unknown face backend 'nope'" in _one_error_line(r.output)
    assert not (tmp_path / "m").exists()
    model = tmp_path / "model"
    shutil.copytree(trained, model)
    doc = json.loads((model / "detector.json").read_text())
    doc["metadata"]["preprocess"]["backend"] = "no-such-backend"
    (model / "detector.json").write_text(json.dumps(doc))
    r = CliRunner().invoke(main, ["detect", "score", str(model), str(split_sample["test"]["neutral"]),
                                  "--no-progress"])
    line = _one_error_line(r.output)
    assert r.exit_code == 1 and str(model / "detector.json") in line and "'no-such-backend'" in line


# -- items 12, 15, 16: damaged model folders ---------------------------------------------------------
@pytest.fixture(scope="module")
def saved_models(tmp_path_factory) -> dict[str, Path]:
    X, y = make_synthetic_task(n=24, size=32)
    root = tmp_path_factory.mktemp("models")
    out = {}
    for name, params in (("freq-logreg", {"size": 32, "grid": 2, "n_bins": 8}),
                         ("lbp-svm", {"size": 32, "grid": [2, 2], "radii": [1]})):
        out[name] = create_detector(name, **params).fit(X, y).save(root / name)
    return out


def _json_edit(key, value):
    def edit(folder: Path) -> None:
        doc = json.loads((folder / "detector.json").read_text())
        if isinstance(key, tuple):
            doc[key[0]][key[1]] = value
        else:
            doc[key] = value
        (folder / "detector.json").write_text(json.dumps(doc))
    return edit


def _text_replace(old, new):
    def edit(folder: Path) -> None:
        p = folder / "detector.json"
        p.write_text(p.read_text().replace(old, new, 1))
    return edit


def _npz(transform, drop_sha=True):
    def edit(folder: Path) -> None:
        transform(folder / "arrays.npz")
        if drop_sha:
            _json_edit("arrays_sha256", None)(folder)
    return edit


def _drop_array(name):
    def transform(p: Path) -> None:
        arrays = dict(np.load(p))
        arrays.pop(name)
        np.savez(p, **arrays)
    return transform


def _nan_array(p: Path) -> None:
    arrays = dict(np.load(p))
    k = sorted(arrays)[0]
    arrays[k] = arrays[k].astype(np.float64)
    arrays[k].flat[0] = np.nan
    np.savez(p, **arrays)


DAMAGE = {
    "threshold null": ("freq-logreg", _json_edit("threshold", None), "detector.json", '"threshold" must be a finite number, got null'),
    "threshold NaN": ("freq-logreg", _text_replace('"threshold": ', '"threshold": NaN, "was": '), "detector.json", "non-finite number NaN"),
    "threshold 1e999": ("freq-logreg", _text_replace('"threshold": ', '"threshold": 1e999, "was": '), "detector.json", "out of range"),
    'state "x"': ("freq-logreg", _json_edit("state", "x"), "detector.json", "'state' must be a JSON object"),
    "state entry missing": ("freq-logreg", _json_edit("state", {}), "detector.json", "\"state\" has no entry 'intercept'"),
    "state not a number": ("lbp-svm", _json_edit(("state", "gamma"), "wide"), "detector.json", "does not fit 'lbp-svm'"),
    "state infinite": ("lbp-svm", _text_replace('"intercept": ', '"intercept": -Infinity, "was": '), "detector.json", "non-finite number -Infinity"),
    "param mistyped": ("freq-logreg", _json_edit(("params", "grid"), "four"), "detector.json", "parameter 'grid'"),
    "nested JSON": ("freq-logreg", lambda f: (f / "detector.json").write_text("[" * 100000 + "]" * 100000), "detector.json", "nested too deeply"),
    "not UTF-8": ("freq-logreg", lambda f: (f / "detector.json").write_bytes(b"\xff\xfe{}"), "detector.json", "not UTF-8"),
    "array missing": ("lbp-svm", _npz(_drop_array("svm_support_vectors")), "arrays.npz", "no array 'svm_support_vectors'"),
    "array NaN": ("freq-logreg", _npz(_nan_array), "arrays.npz", "NaN or infinite"),
    "corrupt npz, no sha256": ("freq-logreg", _npz(lambda p: p.write_bytes(b"PK\x03\x04" + b"\0" * 64)), "arrays.npz", "corrupt"),
    "garbage npz, no sha256": ("freq-logreg", _npz(lambda p: p.write_bytes(b"\x80\x04garbage")), "arrays.npz", "not a NumPy .npz archive"),
    "pickled npz, no sha256": ("freq-logreg", _npz(lambda p: np.savez(p, coef=np.array([{}], dtype=object))), "arrays.npz", "pickled Python objects"),
    "corrupt npz, sha256": ("freq-logreg", _npz(lambda p: p.write_bytes(b"garbage"), drop_sha=False), "arrays.npz", "checksum differs"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_model_folders_give_one_line_naming_the_file(case, saved_models, tmp_path, sample_dir):
    name, damage, culprit, message = DAMAGE[case]
    model = tmp_path / "model"
    shutil.copytree(saved_models[name], model)
    damage(model)
    with pytest.raises(ValueError) as info:
        load_detector(model)
    text = str(info.value)
    assert "\n" not in text and str(model / culprit) in text and message in text, text
    assert "Cannot load file containing pickled data" not in text
    r = CliRunner().invoke(main, ["detect", "score", str(model), str(sample_dir / "neutral"), "--no-progress"])
    assert r.exit_code == 1 and str(model / culprit) in _one_error_line(r.output)


def test_save_refuses_non_finite_models(tmp_path):
    X, y = make_synthetic_task(n=24, size=32)
    det = create_detector("freq-logreg", size=32, grid=2, n_bins=8).fit(X, y)
    with pytest.raises(ValueError, match="finite"):
        det.set_threshold(float("inf"))
    det.threshold_ = float("nan")
    with pytest.raises(ValueError, match="threshold is nan"):
        det.save(tmp_path / "m")
    assert not (tmp_path / "m").exists()
    det.threshold_ = 0.0
    det.model_.w[0] = np.inf
    with pytest.raises(ValueError, match="'coef' holds NaN or infinite"):
        det.save(tmp_path / "m")


# -- items 15 and 20: weight files -------------------------------------------------------------------
@pytest.fixture(scope="module")
def weight_files(tmp_path_factory) -> dict[str, Path]:
    torch = pytest.importorskip("torch", reason="PyTorch (morphlab[torch])")
    import os
    import pickle
    import warnings

    root = tmp_path_factory.mktemp("weights")
    files = {"garbage": root / "garbage.pth", "pickle": root / "evil.pth", "empty": root / "empty.pth",
             "torchscript": root / "net.zip", "state dict": root / "ok.pth", "npz pickle": root / "w.npz"}
    files["garbage"].write_bytes(bytes(range(256)) * 4)
    files["pickle"].write_bytes(pickle.dumps({"w": (os.system, ("echo pwned",))}))
    files["empty"].write_bytes(b"")
    with warnings.catch_warnings():  # torch.jit is deprecated, its archives still exist
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(torch.nn.Linear(2, 1)).save(str(files["torchscript"]))
    torch.save({"state_dict": {"module.weight": torch.ones(1, 2), "module.bias": torch.zeros(1)}},
               str(files["state dict"]))
    np.savez(files["npz pickle"], w=np.array([{}], dtype=object))
    return files


@pytest.mark.parametrize("kind", ["garbage", "pickle", "empty", "torchscript", "npz pickle"])
def test_init_weights_that_are_not_weights(kind, weight_files):
    from morphlab.weights import read_state_dict

    path = weight_files[kind]
    with pytest.raises(ValueError) as info:
        read_state_dict(path)
    text = str(info.value)
    assert text.startswith(f"{path}: not a weights file") and "\n" not in text
    assert "weights_only=False" not in text and "weights_only" not in text
    X, y = make_synthetic_task(n=8, size=32)
    det = create_detector("cnn", init_weights=str(path), epochs=1, width=4, input_size=32)
    with pytest.raises(ValueError, match="not a weights file"):
        det.fit(X, y)


def test_state_dicts_load_and_old_torch_is_refused(weight_files):
    from morphlab.weights import read_state_dict, require_safe_torch

    sd = read_state_dict(weight_files["state dict"])
    assert sorted(sd) == ["bias", "weight"] and sd["weight"].tolist() == [[1.0, 1.0]]
    require_safe_torch()  # the installed torch is new enough
    with pytest.raises(ImportError, match="CVE-2025-32434"):
        require_safe_torch(version="2.5.1+cpu")


def test_fan_weights_load_as_a_state_dict_never_torchscript(weight_files, monkeypatch, tmp_path):
    """The FAN backend builds the network and loads a state dict (a stand-in network and
    module here, so the test needs neither face_alignment nor the real weights)."""
    import importlib.machinery
    import types

    import torch

    pytest.importorskip("dlib", reason="the FAN backend takes face boxes from dlib")
    pkg = types.ModuleType("face_alignment")
    pkg.__spec__ = importlib.machinery.ModuleSpec("face_alignment", None, is_package=True)
    models = types.ModuleType("face_alignment.models")
    models.FAN = lambda n: torch.nn.Sequential(torch.nn.Linear(2, 1))
    monkeypatch.setitem(sys.modules, "face_alignment", pkg)
    monkeypatch.setitem(sys.modules, "face_alignment.models", models)
    from morphlab.face import fan_backend

    good = tmp_path / "fan.pth"
    torch.save({"0.weight": torch.full((1, 2), 3.0), "0.bias": torch.zeros(1)}, str(good))
    net = fan_backend.FanBackend(weights=str(good))._net()
    assert net[0].weight.detach().tolist() == [[3.0, 3.0]]
    for bad, message in ((weight_files["torchscript"], "TorchScript archive"),
                         (weight_files["pickle"], "not a weights file"),
                         (weight_files["state dict"], "not 2D FAN-4 weights")):
        with pytest.raises(ValueError, match=message):
            fan_backend.FanBackend(weights=str(bad))._net()


def test_saved_parameter_types_are_checked_leniently(tmp_path):
    from morphlab.detectors.base import check_params as _check_params
    from morphlab.detectors.lbp_svm import LbpSvm

    where = tmp_path / "detector.json"
    _check_params(LbpSvm, {"size": 32.0, "C": 1, "gamma": 0.5, "grid": [2, 2], "random_state": None}, where)
    _check_params(LbpSvm, {"gamma": "scale", "radii": [1, 2.5]}, where)
    for bad in ({"size": "32"}, {"size": 32.5}, {"grid": 4}, {"radii": ["one"]}, {"kernel": 3}):
        with pytest.raises(ValueError, match=f"{where}: parameter '{next(iter(bad))}'"):
            _check_params(LbpSvm, bad, where)


# -- the scores CSV of `detect score --csv`: replaced only with --overwrite, only if morphlab wrote it --
def test_score_csv_is_replaced_only_with_overwrite_and_never_a_foreign_file(
        trained, sample_dir, tmp_path, monkeypatch):
    import fcntl

    import morphlab.detect

    a, b = sorted((sample_dir / "neutral").glob("*.jpg"))[:2]
    cli = CliRunner()
    csv = tmp_path / "out" / "scores.csv"  # its folder does not exist yet

    def score(image, *extra, target=csv):
        return cli.invoke(main, ["detect", "score", str(trained), str(image), "--csv", str(target),
                                 "--no-progress", *extra])

    r = score(a)
    assert r.exit_code == 0, r.output
    first = csv.read_text()
    assert first.startswith("path,") and a.name in first
    assert "scores.csv" in owned_files(csv.parent)

    # refused before any image is scored, the CSV untouched
    real_score_files = morphlab.detect.score_files

    def must_not_score(*args, **kwargs):
        raise AssertionError("scored although the CSV is refused")

    monkeypatch.setattr(morphlab.detect, "score_files", must_not_score)
    r = score(b)
    assert r.exit_code == 1
    assert f"{csv}: holds scores morphlab wrote before; pass --overwrite" in _one_error_line(r.output)
    assert csv.read_text() == first
    monkeypatch.setattr(morphlab.detect, "score_files", real_score_files)

    r = score(b, "--overwrite")
    assert r.exit_code == 0, r.output
    second = csv.read_text()
    assert b.name in second and a.name not in second
    r = score(a, "--overwrite")  # the record follows the new content: replaceable again
    assert r.exit_code == 0, r.output

    # edited since morphlab wrote it: the user's now, kept even with --overwrite
    edited = csv.read_text() + "my note\n"
    csv.write_text(edited)
    r = score(b, "--overwrite")
    assert r.exit_code == 1 and "morphlab did not write it (or it was edited since)" in _one_error_line(r.output)
    assert csv.read_text() == edited

    # a CSV morphlab never wrote, in a folder without any record
    mine = tmp_path / "mine" / "results.csv"
    mine.parent.mkdir()
    mine.write_text("subject,score\n001,0.5\n")
    for extra in ((), ("--overwrite",)):
        r = score(a, *extra, target=mine)
        assert r.exit_code == 1
        assert f"{mine}: exists and morphlab did not write it" in _one_error_line(r.output)
    assert mine.read_text() == "subject,score\n001,0.5\n"
    assert not (mine.parent / ".morphlab-owned.json").exists()

    # another writer holds the CSV's folder: refused, nothing written
    fresh = tmp_path / "busy" / "scores.csv"
    fresh.parent.mkdir()
    with open(fresh.parent / ".morphlab.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        r = score(a, target=fresh)
    assert r.exit_code == 1 and "another morphlab process is writing this folder" in _one_error_line(r.output)
    assert not fresh.exists()
