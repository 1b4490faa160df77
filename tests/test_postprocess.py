"""Post-processing: operators, JPEG quality, deterministic print-scan, manifests that chain."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from morphlab.generators.base import Contributor, Generator, MorphOutput
from morphlab.generators.runner import RunConflictError, generate_attack_set, load_manifest
from morphlab.io import read_image, sha256_file, write_image
from morphlab.postprocess import (
    OPS,
    apply_ops,
    check_chain,
    image_seed,
    load_set,
    parse_op,
    postprocess_set,
    source_chain,
)

#: libjpeg's standard luminance quantisation table (ITU T.81 K.1), natural order.
STD_LUMA = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
]


def _ijg_table(q: int) -> list[int]:
    scale = 5000 // q if q < 50 else 200 - 2 * q
    return [min(255, max(1, (v * scale + 50) // 100)) for v in STD_LUMA]


@pytest.fixture(scope="module")
def photos(sample_dir: Path, tmp_path_factory) -> Path:
    """Four real FRLL portraits at 240 px (two subjects, neutral + smiling)."""
    import cv2

    out = tmp_path_factory.mktemp("photos")
    for sub in ("neutral/002_03", "neutral/004_03", "smiling/002_08", "smiling/004_08"):
        img = read_image(sample_dir / f"{sub}.jpg")
        write_image(out / f"{sub}.png", cv2.resize(img, (240, 240), interpolation=cv2.INTER_AREA))
    return out


class _Blend(Generator):
    """A tiny stand-in generator: the pixel mean of the two contributors."""

    name = "test-blend"
    version = "1"

    def get_params(self) -> dict:
        return {}

    def output_tags(self) -> list[str]:
        return ["blend"]

    def generate(self, a: Contributor, b: Contributor, *, seed: int) -> list[MorphOutput]:
        x = (read_image(a.path).astype(np.uint16) + read_image(b.path)) // 2
        return [MorphOutput(x.astype(np.uint8), "blend", {})]


@pytest.fixture(scope="module")
def attack_set(photos: Path, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("attack")
    pairs = d / "pairs.csv"
    pairs.write_text(
        "pair_id,subject_a,image_a,subject_b,image_b\n"
        "0001,002,neutral/002_03.png,004,neutral/004_03.png\n"
        "0002,002,smiling/002_08.png,004,smiling/004_08.png\n"
    )
    generate_attack_set(pairs, _Blend, {}, d / "set", dataset_dir=photos, progress=False)
    return d / "set"


# ----------------------------------------------------------------------------------------
# operators
# ----------------------------------------------------------------------------------------
def test_specs_round_trip_and_errors():
    assert {"jpeg", "resize", "icao", "print-scan", "background"} <= set(OPS)
    op = parse_op("jpeg:quality=75")
    assert op.quality == 75 and op.spec() == "jpeg:quality=75" and parse_op(op.spec()) == op
    ps = parse_op("print-scan:dpi=200,noise=0")
    assert parse_op(ps.spec()) == ps and "dpi=200" in ps.spec() and "keep_size=true" in ps.spec()
    assert parse_op("resize:width=100").spec() == "resize:interpolation=area,width=100"
    with pytest.raises(KeyError, match="unknown post-processing operator 'blur'.*valid names: background, icao, jpeg"):
        parse_op("blur:sigma=2")
    with pytest.raises(ValueError, match="jpeg has no parameter 'level'; valid parameters: quality"):
        parse_op("jpeg:level=75")
    for bad, msg in (("jpeg:quality=0", r"in \[1, 100\]"), ("jpeg:quality=101", r"in \[1, 100\]"),
                     ("jpeg:quality=high", "an integer"), ("jpeg:quality=true", "an integer"),
                     ("jpeg:quality=7.5", "an integer"), ("jpeg:quality", "expected name:key=value"),
                     ("jpeg:quality=1,quality=2", "given twice"), ("resize", "give width and/or height"),
                     ("resize:scale=0.5,width=3", "not both"), ("print-scan:keep_size=1", "true or false"),
                     ("resize:width=9,interpolation=nearest", "interpolation must be one of")):
        with pytest.raises(ValueError, match=msg):
            parse_op(bad)


def test_resize_and_icao_geometry(photos: Path):
    img = read_image(photos / "neutral/002_03.png")
    out, enc = apply_ops(img, ["resize:width=120"])
    assert out.shape == (120, 120, 3) and enc is None
    out, _ = apply_ops(img, ["resize:scale=0.5,interpolation=cubic", "resize:width=30,height=40"])
    assert out.shape == (40, 30, 3)
    # passport geometry: a 35x45 frame with the eyes level on the eye line
    from morphlab.face.cache import get_face
    from morphlab.face.schemes import eye_centres

    crop, _ = apply_ops(img, ["icao:width=210,height=270"], source=photos / "neutral/002_03.png")
    assert crop.shape == (270, 210, 3)
    write_image(photos / "crop.png", crop)
    eyes = eye_centres(get_face("dlib", photos / "crop.png"))
    assert np.allclose(eyes[:, 1], 0.45 * 270, atol=6)
    assert np.allclose(eyes[1, 0] - eyes[0, 0], 0.25 * 210, atol=6)
    (photos / "crop.png").unlink()


def test_jpeg_quality_is_what_was_asked(photos: Path, tmp_path: Path):
    sizes = {}
    for q in (20, 50, 75, 95):
        s = postprocess_set(photos / "neutral", tmp_path / f"q{q}", [f"jpeg:quality={q}"], progress=False)
        assert s.processed == 2
        f = tmp_path / f"q{q}" / "002_03.jpg"  # the last jpeg IS the file: no second encoding
        with Image.open(f) as im:
            assert im.format == "JPEG"
            assert list(im.quantization[0]) == _ijg_table(q)
        sizes[q] = f.stat().st_size
        # the decoded pixels are within JPEG error of the source, closer at higher q
        err = np.abs(read_image(f).astype(int) - read_image(photos / "neutral/002_03.png")).mean()
        sizes[q, "err"] = err
    assert sizes[20] < sizes[50] < sizes[75] < sizes[95]
    assert sizes[20, "err"] > sizes[50, "err"] > sizes[75, "err"] > sizes[95, "err"]
    # an op list not ending with jpeg writes lossless PNG
    postprocess_set(photos / "neutral", tmp_path / "png", ["jpeg:quality=30", "resize:scale=1.0"],
                    progress=False)
    assert sorted(p.name for p in (tmp_path / "png").glob("*.png")) == ["002_03.png", "004_03.png"]


def test_print_scan_is_deterministic_for_a_seed(photos: Path):
    img = read_image(photos / "neutral/002_03.png")
    a, _ = apply_ops(img, ["print-scan"], seed=7)
    b, _ = apply_ops(img, ["print-scan"], seed=7)
    c, _ = apply_ops(img, ["print-scan"], seed=8)
    assert a.shape == img.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    # it changes the image as a print would, and keeps it recognisable: less colourful,
    # lower contrast, a PSNR of a few tens of dB, strongly correlated with the input
    import cv2

    x, y = img.astype(float), a.astype(float)
    gamut, _ = apply_ops(img, ["print-scan:colour=0,noise=0"])  # no random colour cast
    xs, gs = (cv2.resize(v, (24, 24), interpolation=cv2.INTER_AREA) for v in (x, gamut.astype(float)))
    assert gs.std(axis=2).mean() < 0.95 * xs.std(axis=2).mean()  # saturation
    assert gs.mean(axis=2).std() < 0.95 * xs.mean(axis=2).std()  # tonal range
    psnr = 10 * np.log10(255**2 / ((x - y) ** 2).mean())
    assert 15 < psnr < 35
    assert np.corrcoef(x.mean(axis=2).ravel(), y.mean(axis=2).ravel())[0, 1] > 0.95
    # at scan resolution: a 35 mm print at 150 dpi is 207 px wide
    d, _ = apply_ops(img, ["print-scan:dpi=150,keep_size=false"], seed=7)
    assert d.shape == (207, 207, 3)
    assert image_seed(0, "ab") != image_seed(1, "ab") and image_seed(0, "ab") == image_seed(0, "ab")


def test_print_scan_sets_same_bytes_any_jobs_other_seed_other_bytes(photos: Path, tmp_path: Path):
    ops = ["print-scan", "jpeg:quality=90"]
    postprocess_set(photos, tmp_path / "a", ops, seed=3, progress=False)
    postprocess_set(photos, tmp_path / "b", ops, seed=3, jobs=2, progress=False)
    postprocess_set(photos, tmp_path / "c", ops, seed=4, progress=False)
    sha = {k: {r["file"]: r["sha256"] for r in load_set(tmp_path / k)} for k in "abc"}
    assert len(sha["a"]) == 4 and sha["a"] == sha["b"]
    assert all(sha["a"][f] != sha["c"][f] for f in sha["a"])
    assert (tmp_path / "a/manifest.jsonl").read_bytes() == (tmp_path / "b/manifest.jsonl").read_bytes()


# ----------------------------------------------------------------------------------------
# sets and manifests
# ----------------------------------------------------------------------------------------
def test_attack_set_manifest_chains_back(attack_set: Path, tmp_path: Path):
    src = {r["file"]: r for r in load_manifest(attack_set)}
    s1 = postprocess_set(attack_set, tmp_path / "ps", ["print-scan"], progress=False)
    assert (s1.items, s1.processed, s1.failed) == (2, 2, 0)
    # still an attack set for the runner's reader (and so for map-score)
    recs = load_manifest(tmp_path / "ps", verify=True)
    assert [r["file"] for r in recs] == list(src)  # same names (png), same order
    for r in recs:
        o = src[r["file"]]
        assert r["kind"] == "morph"
        for key in ("pair_id", "generator", "tag", "subject_a", "subject_b", "params", "seed"):
            assert r[key] == o[key]
        (step,) = r["postprocess"]
        assert step["ops"] == [parse_op("print-scan").spec()] and step["seed"] == 0
        assert step["source"]["sha256"] == o["sha256"] == sha256_file(o["path"])
        assert step["source"]["path"] == o["path"]
        assert r["sha256"] == sha256_file(r["path"]) != o["sha256"]
    # processing the processed set again extends the chain back to the morph
    s2 = postprocess_set(tmp_path / "ps", tmp_path / "jpg", ["jpeg:quality=75"], progress=False)
    assert s2.processed == 2
    r = load_set(tmp_path / "jpg")[0]
    chain = source_chain(r)
    assert [c["ops"] for c in chain] == [["jpeg:quality=75"], [parse_op("print-scan").spec()]]
    assert chain[0]["path"] == str(tmp_path / "ps" / "0001_002_004_blend.png")
    assert chain[1]["path"] == str(attack_set / "0001_002_004_blend.png")
    assert r["file"] == "0001_002_004_blend.jpg" and r["pair_id"] == "0001"
    check_chain(r)
    # a modified source breaks the chain, and the next run redoes that image only
    src_file = tmp_path / "ps" / "0001_002_004_blend.png"
    write_image(src_file, np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="modified since it was post-processed"):
        check_chain(r)
    with pytest.raises(ValueError, match="does not match its recorded sha256"):
        load_manifest(tmp_path / "ps", verify=True)


def test_resume_conflicts_and_failures(photos: Path, tmp_path: Path):
    out = tmp_path / "out"
    ops = ["icao:width=140,height=180", "jpeg:quality=80"]
    s = postprocess_set(photos, out, ops, progress=False)
    assert (s.processed, s.skipped) == (4, 0)
    first = (out / "manifest.jsonl").read_bytes()
    # nothing changed: everything skipped, same manifest bytes
    s = postprocess_set(photos, out, ops, progress=False, resume=True)
    assert (s.processed, s.skipped) == (4, 0)[::-1]
    assert (out / "manifest.jsonl").read_bytes() == first
    # a lost output file is redone, alone
    (out / "004_08.jpg").unlink()
    s = postprocess_set(photos, out, ops, progress=False)
    assert (s.processed, s.skipped) == (1, 3)
    assert (out / "manifest.jsonl").read_bytes() == first
    # another configuration is refused, naming the difference, unless overwrite
    with pytest.raises(RunConflictError, match="ops: "):
        postprocess_set(photos, out, ["jpeg:quality=50"], progress=False)
    s = postprocess_set(photos, out, ["jpeg:quality=50"], progress=False, overwrite=True)
    assert s.processed == 4 and not (out / "run.json").read_text().count("icao")
    # an image without a face fails alone, as a manifest line
    write_image(photos / "blank.png", np.full((120, 100, 3), 200, np.uint8))
    try:
        s = postprocess_set(photos, tmp_path / "f", ops, progress=False)
    finally:
        (photos / "blank.png").unlink()
    assert (s.processed, s.failed) == (4, 1)
    assert "NoFaceError" in s.failures[0]["error"] and s.failures[0]["relpath"] == "blank.png"
    assert len(load_set(tmp_path / "f")) == 4
    assert len(load_set(tmp_path / "f", include_failed=True)) == 5


def test_bona_fide_folders_keep_subjects_apart(tmp_path: Path):
    for sub in ("0001", "0002"):
        for cap in ("01", "02"):
            write_image(tmp_path / "onot" / sub / f"{cap}.png", np.full((16, 12, 3), 9, np.uint8))
    postprocess_set(tmp_path / "onot", tmp_path / "out", ["resize:scale=0.5"], progress=False)
    recs = load_set(tmp_path / "out")
    assert [(r["file"], r["relpath"], r["kind"]) for r in recs] == [
        ("0001_01.png", "0001/01.png", "bona-fide"), ("0001_02.png", "0001/02.png", "bona-fide"),
        ("0002_01.png", "0002/01.png", "bona-fide"), ("0002_02.png", "0002/02.png", "bona-fide"),
    ]
    assert read_image(recs[0]["path"]).shape == (8, 6, 3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no manifest.jsonl and no image files"):
        postprocess_set(tmp_path / "empty", tmp_path / "x", ["jpeg"], progress=False)
    with pytest.raises(FileNotFoundError, match="no such attack set"):
        postprocess_set(tmp_path / "missing", tmp_path / "x2", ["jpeg"], progress=False)
    with pytest.raises(ValueError, match="no post-processing operator"):
        postprocess_set(tmp_path / "onot", tmp_path / "x3", [], progress=False)


def test_cli_postprocess(attack_set: Path, tmp_path: Path):
    from click.testing import CliRunner

    from morphlab.cli import main

    out = tmp_path / "cli"
    res = CliRunner().invoke(main, ["postprocess", str(attack_set / "manifest.jsonl"), "-o", str(out),
                                    "--op", "print-scan:noise=1", "--op", "jpeg:quality=75", "--seed", "5",
                                    "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "2 images: 0 done before, 2 processed, 0 failed" in res.output
    run = json.loads((out / "run.json").read_text())
    assert run["ops"][1] == "jpeg:quality=75" and run["seed"] == 5 and run["input_kind"] == "attack-set"
    res = CliRunner().invoke(main, ["postprocess", str(attack_set), "-o", str(out), "--op", "sharpen"])
    assert res.exit_code == 1 and "unknown post-processing operator 'sharpen'" in res.output


# ----------------------------------------------------------------------------------------
# data safety (issue 10 items 3, 4, 6, 13)
# ----------------------------------------------------------------------------------------
def _tiny_folder(root: Path, n: int = 3) -> Path:
    for i in range(n):
        write_image(root / f"{i:03d}_01.png", np.full((20, 16, 3), 40 * i + 10, np.uint8))
    return root


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_output_may_not_be_is_inside_or_around_the_source(tmp_path: Path):
    src = _tiny_folder(tmp_path / "photos")
    postprocess_set(src, tmp_path / "set", ["resize:scale=0.5"], progress=False)
    for source, out, needle in [
        (tmp_path / "set", tmp_path / "set", "is the source folder"),  # SET -o SET
        (tmp_path / "set" / "manifest.jsonl", tmp_path / "set", "is the source folder"),
        (src, src / "small", "lies inside the source folder"),
        (src, tmp_path, "contains the source folder"),
    ]:
        before = _tree(tmp_path)
        for overwrite in (False, True):
            with pytest.raises(ValueError, match=needle):
                postprocess_set(source, out, ["jpeg"], overwrite=overwrite, progress=False)
        assert _tree(tmp_path) == before  # nothing deleted, nothing written
    # image records (morphlab run's bona fide references): their folders count as sources
    from morphlab.postprocess import image_items

    items = image_items(sorted(src.glob("*.png")), src)
    with pytest.raises(ValueError, match="lies inside the source folder"):
        postprocess_set(items, src / "x", ["jpeg"], progress=False)
    from click.testing import CliRunner

    from morphlab.cli import main

    res = CliRunner().invoke(main, ["postprocess", str(tmp_path / "set"), "-o",
                                    str(tmp_path / "set"), "--op", "jpeg", "--overwrite"])
    assert res.exit_code == 1 and "is the source folder" in res.output
    assert len(load_set(tmp_path / "set")) == 3


def test_a_locked_output_folder_is_refused(tmp_path: Path):
    import os
    import subprocess
    import sys

    from morphlab.outdir import locked_folder

    src = _tiny_folder(tmp_path / "photos")
    out = tmp_path / "set"
    with locked_folder(out):
        res = subprocess.run([sys.executable, "-m", "morphlab.cli", "postprocess", str(src),
                              "-o", str(out), "--op", "jpeg", "--no-progress"],
                             capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stderr
    assert f"pid {os.getpid()}" in res.stderr and "writing this folder" in res.stderr
    assert "Traceback" not in res.stderr and not (out / "run.json").exists()


def test_a_changed_source_is_redone_on_resume(tmp_path: Path):
    """Issue 10 item 6: a source replaced under the same name does not keep a stale output."""
    src = _tiny_folder(tmp_path / "photos")
    out = tmp_path / "set"
    s = postprocess_set(src, out, ["resize:scale=0.5"], progress=False)
    assert s.processed == 3
    recs = {r["file"]: r for r in load_set(out)}
    for r in recs.values():  # bona fide sources carry their sha256 too
        assert r["postprocess"][-1]["source"]["sha256"] == sha256_file(src / r["relpath"])
    before = {n: (out / n).stat() for n in recs}
    write_image(src / "001_01.png", np.full((20, 16, 3), 250, np.uint8))  # same name
    s = postprocess_set(src, out, ["resize:scale=0.5"], progress=False, resume=True)
    assert (s.skipped, s.processed) == (2, 1)
    after = {n: (out / n).stat() for n in recs}
    for n in recs:
        same = (after[n].st_ino, after[n].st_mtime_ns) == (before[n].st_ino, before[n].st_mtime_ns)
        assert same == (n != "001_01.png"), n
    new = {r["file"]: r for r in load_set(out)}["001_01.png"]
    assert new["postprocess"][-1]["source"]["sha256"] == sha256_file(src / "001_01.png")
    assert read_image(out / "001_01.png")[0, 0, 0] == 250
    # an unchanged re-run touches nothing
    assert postprocess_set(src, out, ["resize:scale=0.5"], progress=False).skipped == 3


def test_exit_status_when_nothing_or_part_succeeded(tmp_path: Path):
    from click.testing import CliRunner

    from morphlab.cli import main

    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(3):
        (bad / f"{i}.png").write_bytes(b"not a png")
    res = CliRunner().invoke(main, ["postprocess", str(bad), "-o", str(tmp_path / "o1"),
                                    "--op", "jpeg", "--no-progress"])
    assert res.exit_code == 1
    assert res.output.strip().splitlines()[-1].startswith(
        "Error: nothing succeeded: all 3 images failed")
    src = _tiny_folder(tmp_path / "photos")
    (src / "broken.png").write_bytes(b"not a png")
    res = CliRunner().invoke(main, ["postprocess", str(src), "-o", str(tmp_path / "o2"),
                                    "--op", "jpeg", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert res.output.strip().splitlines()[-1].startswith("1 of 4 images failed")
    # the failed line records its source's sha256 as well
    failed = [r for r in load_set(tmp_path / "o2", include_failed=True) if r["status"] == "failed"]
    assert failed[0]["postprocess"][-1]["source"]["sha256"] == sha256_file(src / "broken.png")


def test_a_full_disk_stops_postprocessing(tmp_path: Path, monkeypatch):
    import errno

    import morphlab.postprocess.sets as sets

    calls = []

    def full(path, data):
        calls.append(path)
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(sets, "atomic_write_bytes", full)
    with pytest.raises(OSError, match="No space left on device.*the run stopped"):
        postprocess_set(_tiny_folder(tmp_path / "photos"), tmp_path / "o", ["jpeg"],
                        progress=False)
    assert len(calls) == 1 and (tmp_path / "o" / "manifest.jsonl").read_text() == ""


def test_an_attack_set_without_morphs_is_an_error(tmp_path: Path):
    d = tmp_path / "set"
    d.mkdir()
    (d / "manifest.jsonl").write_text(json.dumps(
        {"status": "failed", "pair_id": "0001", "error": "NoFaceError: x"}) + "\n")
    with pytest.raises(ValueError, match="no image to process .only 1 failed line"):
        postprocess_set(d, tmp_path / "out", ["jpeg"], progress=False)
    assert not (tmp_path / "out").exists()


def test_a_morph_edited_in_place_is_redone_not_kept(attack_set: Path, tmp_path: Path):
    """The attack set's manifest still names the old sha256: the stale output is not kept."""
    import shutil

    src = tmp_path / "attack"
    shutil.copytree(attack_set, src)
    out = tmp_path / "ps"
    assert postprocess_set(src, out, ["resize:scale=0.5"], progress=False).processed == 2
    victim = load_manifest(src)[0]["path"]
    write_image(victim, np.zeros((8, 8, 3), np.uint8))  # edited; manifest.jsonl untouched
    s = postprocess_set(src, out, ["resize:scale=0.5"], progress=False)
    assert (s.skipped, s.processed, s.failed) == (1, 0, 1)
    assert "does not match the sha256 its manifest records" in s.failures[0]["error"]
    assert [r["pair_id"] for r in load_set(out)] == ["0002"]  # no stale output left listed
    assert sorted(f.name for f in out.glob("*.png")) == ["0002_002_004_blend.png"]
