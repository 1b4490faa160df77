"""`morphlab detect` follows the CLI conventions; the old spellings still work and warn.

``detect score``: ``--csv FILE`` or ``-o DIR`` (writes DIR/scores.csv); ``-o FILE.csv`` and
``--output FILE`` are the deprecated spellings of ``--csv``, ``--ray-workers`` that of
``-j/--jobs``. ``detect train``: ``-o/--out``, ``--landmarks``, ``--seed`` (the old
``--out-dir``, ``--backend``, ``--self-morph-seed``). A second ``detect eval`` reads the
aligned crops back from the cache and gives the same report; ``-j 2`` the same scores.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from morphlab.cli import main

pytest.importorskip("sklearn", reason="scikit-learn (morphlab[detect])")

FAST = {"size": 48, "grid": 2, "n_bins": 8}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A freq-logreg model fitted on synthetic 64 px crops (dlib alignment recorded)."""
    from morphlab.detectors.base import create_detector
    from morphlab.detectors.testing import make_synthetic_task

    X, y = make_synthetic_task(size=64)
    det = create_detector("freq-logreg", **FAST).fit(X, y)
    det.metadata_ = {"preprocess": {"backend": "dlib", "crop_size": 64}}
    out = tmp_path_factory.mktemp("tiny") / "model"
    det.save(out)
    return out


@pytest.fixture()
def photos(sample_dir: Path) -> list[Path]:
    return sorted((sample_dir / "neutral").glob("*.jpg"))[:2]


def _score(model, photos, *args):
    return CliRunner().invoke(main, ["detect", "score", str(model), *map(str, photos),
                                     "--no-progress", *map(str, args)])


def test_score_writes_csv_file_or_out_folder(tiny_model, photos, tmp_path):
    r = _score(tiny_model, photos, "--csv", tmp_path / "a.csv")
    assert r.exit_code == 0, r.output
    assert "deprecated" not in r.output and "2 scores written to" in r.output
    r = _score(tiny_model, photos, "-o", tmp_path / "scored")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "scored" / "scores.csv").read_text() == (tmp_path / "a.csv").read_text()
    # both at once: a usage error
    r = _score(tiny_model, photos, "-o", tmp_path / "x", "--csv", tmp_path / "b.csv")
    assert r.exit_code == 2 and "not both" in r.output
    # -o DIR is a folder of its own: never the model's or an input image's folder
    r = _score(tiny_model, photos, "-o", tiny_model)
    assert r.exit_code == 1 and "model folder" in r.output
    r = _score(tiny_model, photos, "-o", photos[0].parent)
    assert r.exit_code == 1 and "input images" in r.output


@pytest.mark.parametrize("old", [["-o", "{tmp}/old.csv"], ["--output", "{tmp}/old.csv"]])
def test_score_old_file_spellings_still_work_and_warn(tiny_model, photos, tmp_path, old):
    r = _score(tiny_model, photos, *[a.format(tmp=tmp_path) for a in old])
    assert r.exit_code == 0, r.output
    assert "is deprecated" in r.output and "use --csv" in r.output
    assert (tmp_path / "old.csv").read_text().startswith("path,")


def test_score_ray_workers_is_jobs_now_and_warns(tiny_model, photos, tmp_path):
    r = _score(tiny_model, photos[:1], "--ray-workers", "2", "--csv", tmp_path / "s.csv")
    assert r.exit_code == 0, r.output
    assert "--ray-workers is deprecated" in r.output and "use -j/--jobs" in r.output


def test_score_no_cache_reads_and_writes_no_cache(tiny_model, photos, tmp_path, monkeypatch):
    monkeypatch.setenv("MORPHLAB_CACHE", str(tmp_path / "cache"))
    r = _score(tiny_model, photos, "--no-cache", "--csv", tmp_path / "a.csv")
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "cache").exists()
    r = _score(tiny_model, photos, "--csv", tmp_path / "b.csv", "-j", "2")
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "cache" / "crops").rglob("*.npz"))) == 2
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()


def test_train_old_spellings_still_work_and_warn(sample_dir, tmp_path):
    bona_fide = sorted((sample_dir / "neutral").glob("*.jpg"))[:4]
    listed = tmp_path / "bona_fide.txt"
    listed.write_text("".join(f"{p}\n" for p in bona_fide))
    out = tmp_path / "model"
    r = CliRunner().invoke(main, [
        "detect", "train", "-d", "freq-logreg", *sum((["-p", f"{k}={v}"] for k, v in FAST.items()), []),
        "--bona-fide", str(listed), "--self-morph", "--crop-size", "64", "--no-progress",
        "--self-morph-seed", "5", "--backend", "dlib", "--out-dir", str(out)])
    assert r.exit_code == 0, r.output
    for old, new in (("--self-morph-seed", "--seed"), ("--backend", "--landmarks"),
                     ("--out-dir", "-o/--out")):
        assert f"Warning: {old} is deprecated" in r.output and f"use {new}" in r.output
    doc = json.loads((out / "detector.json").read_text())
    assert doc["metadata"]["train"]["self_morph"]["seed"] == 5 and doc["params"]["random_state"] == 5
    assert doc["metadata"]["preprocess"]["backend"] == "dlib"
    # --seed and a disagreeing -p random_state: a usage error
    r = CliRunner().invoke(main, ["detect", "train", "-d", "freq-logreg", "--bona-fide", str(listed),
                                  "--self-morph", "--seed", "1", "-p", "random_state=2",
                                  "-o", str(tmp_path / "m2")])
    assert r.exit_code == 2 and "disagree" in r.output


def test_second_eval_reads_cached_crops_and_gives_the_same_report(split_sample, tmp_path, monkeypatch):
    import morphlab.io

    tr, te = split_sample["train"], split_sample["test"]
    monkeypatch.setenv("MORPHLAB_CACHE", str(tmp_path / "cache"))
    cli = CliRunner()
    model = tmp_path / "model"
    r = cli.invoke(main, ["detect", "train", "-d", "freq-logreg", "--bona-fide", str(tr["neutral"]),
                          "--attacks", str(tr["attacks"]), "--crop-size", "64", "-o", str(model),
                          "--no-progress", *sum((["-p", f"{k}={v}"] for k, v in FAST.items()), [])])
    assert r.exit_code == 0, r.output
    args = ["detect", "eval", str(model), "--bona-fide", str(te["neutral"]), "--attacks",
            str(te["attacks"]), "--no-progress"]
    r = cli.invoke(main, [*args, "-o", str(tmp_path / "e1"), "-j", "2"])
    assert r.exit_code == 0, r.output
    decoded = []
    real = morphlab.io.read_image
    monkeypatch.setattr(morphlab.io, "read_image", lambda p, *a, **k: decoded.append(p) or real(p, *a, **k))
    r = cli.invoke(main, [*args, "-o", str(tmp_path / "e2")])
    assert r.exit_code == 0, r.output
    assert decoded == []  # every crop came from the cache
    assert (tmp_path / "e1" / "scores.csv").read_text() == (tmp_path / "e2" / "scores.csv").read_text()
    m1, m2 = (json.loads((tmp_path / e / "metrics.json").read_text()) for e in ("e1", "e2"))
    assert m1["metrics"] == m2["metrics"]
