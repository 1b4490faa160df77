"""The FRLL loader: the real set (shared layout), a release-layout replica, broken layouts."""

from __future__ import annotations

import logging
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest

from morphlab.datasets.frll import load_frll
from morphlab.datasets.loaders import LOADERS, get_loader, load_dataset, loader_names
from morphlab.datasets.pairs import make_pairs
from morphlab.io import ImageError, write_image


def _img(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # distinct content per file: identical images are refused as one image
    rng = np.random.default_rng(zlib.crc32(str(path).encode()))
    write_image(path, rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    return path


def _release(root: Path, subjects=("002", "003", "004"), *, tem=True) -> Path:
    """A tiny replica of the FRLL release layout (with a pose folder the loader ignores)."""
    for s in subjects:
        _img(root / "neutral_front" / f"{s}_03.jpg")
        if tem:
            (root / "neutral_front" / f"{s}_03.tem").write_text("1\n1\t1\n")
        _img(root / "smiling_front" / f"{s}_08.jpg")
        _img(root / "neutral_left" / f"{s}_04.jpg")
    rows = ["face_id,face_age,face_gender,face_eth"] + [f"{s},30,female,white" for s in subjects]
    (root / "london_info.csv").write_text("\n".join(rows) + "\n")
    return root


def test_real_frll(frll_set: Path, frll_set_subjects: int):
    """The embedded sample (12 identities) and, with MORPHLAB_TEST_DATA, the full set (82)."""
    n = frll_set_subjects
    ds = load_frll(frll_set)
    assert ds.loader == "frll" and ds.params["layout"] == "shared"
    assert len(ds.subjects()) == n and len(ds.samples) == 2 * n
    enrol = ds.enrolment()
    assert len(enrol) == n
    assert all(s.capture == "03" and s.path.parent.name == "neutral" for s in enrol)
    probes = ds.probes()
    assert sorted(probes) == ds.subjects()
    assert all(len(v) == 1 and v[0].path.name.endswith("_08.jpg") for v in probes.values())
    # metadata from london_info.csv reaches both images of a subject
    by = ds.by_subject()
    assert {s.gender for s in by["002"]} == {"female"}
    assert {s.gender for s in ds.samples} == {"female", "male"}
    # pairs are made from the enrolment (neutral) images only
    ps = make_pairs(ds, strategy="same-gender", seed=1)
    assert all(p.image_a.parent.name == "neutral" and p.image_b.parent.name == "neutral"
               for p in ps.pairs)
    assert all(p.gender_a == p.gender_b for p in ps.pairs)
    assert ps.protocol["dataset"]["loader"] == "frll"


def test_embedded_sample_through_the_registry(sample_dir: Path):
    assert {"folder", "frll", "fei", "onot"} <= set(loader_names())
    ds = load_dataset("frll", sample_dir, require_tem=True)
    assert len(ds.subjects()) == 12 and len(ds.enrolment()) == 12
    # the recorded parameters reload the same dataset
    again = load_dataset(ds.loader, ds.root, **ds.params)
    assert again.samples == ds.samples


def test_release_layout(tmp_path: Path):
    root = _release(tmp_path / "frll")
    ds = load_frll(root)
    assert ds.params["layout"] == "release"
    assert [ds.relpath(s) for s in ds.samples] == [
        "neutral_front/002_03.jpg", "neutral_front/003_03.jpg", "neutral_front/004_03.jpg",
        "smiling_front/002_08.jpg", "smiling_front/003_08.jpg", "smiling_front/004_08.jpg",
    ]  # neutral_left/ is not read
    assert [s.role for s in ds.samples] == ["enrolment"] * 3 + ["probe"] * 3
    assert all(s.gender == "female" for s in ds.samples)
    only = load_frll(root, probes=False, metadata=None)
    assert len(only.samples) == 3 and not only.probes() and only.samples[0].gender is None


def test_registry_errors(tmp_path: Path):
    with pytest.raises(KeyError, match="unknown dataset loader 'nope'; valid names: fei, folder"):
        get_loader("nope")
    with pytest.raises(ValueError, match="no parameter\\(s\\) colour; valid parameters: layout"):
        load_dataset("frll", tmp_path, colour=1)
    assert LOADERS["frll"] is load_frll


@pytest.mark.parametrize("layout", ["release", "shared"])
def test_broken_layouts(tmp_path: Path, layout: str, caplog):
    root = _release(tmp_path / "frll")
    if layout == "shared":
        (root / "neutral_front").rename(root / "neutral")
        (root / "smiling_front").rename(root / "smiling")
    neutral, smiling = (root / d for d in (("neutral_front", "smiling_front") if layout == "release"
                                           else ("neutral", "smiling")))
    # a subject without its smiling image
    (smiling / "003_08.jpg").unlink()
    with pytest.raises(ValueError, match=r"1 of 3 subject\(s\) .* incomplete: 003 \(no 08\)"):
        load_frll(root)
    with caplog.at_level(logging.WARNING):
        ds = load_frll(root, allow_incomplete=True)
    assert "003 (no 08)" in caplog.text and "no probe image" in caplog.text
    assert len(ds.enrolment()) == 3 and sorted(ds.probes()) == ["002", "004"]
    # a misnamed image in the neutral folder
    _img(neutral / "005_08.jpg")
    with pytest.raises(ValueError, match=r"1 image\(s\) not named NNN_03: 005_08.jpg"):
        load_frll(root, allow_incomplete=True)
    (neutral / "005_08.jpg").unlink()
    # an unreadable image is named
    (neutral / "004_03.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ImageError, match="004_03.jpg"):
        load_frll(root, allow_incomplete=True)
    _img(neutral / "004_03.jpg")
    # missing .tem files with require_tem
    (neutral / "002_03.tem").unlink()
    with pytest.raises(ValueError, match=r"1 neutral image\(s\) without their .tem .*: 002_03.jpg"):
        load_frll(root, allow_incomplete=True, require_tem=True)
    # no smiling folder at all
    shutil.rmtree(smiling)
    with pytest.raises(FileNotFoundError, match="smiling .*probes=False"):
        load_frll(root)


def test_not_an_frll_folder(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="FRLL folder not found"):
        load_frll(tmp_path / "missing")
    _img(tmp_path / "faces" / "a.jpg")
    with pytest.raises(ValueError, match="not an FRLL folder: expected neutral_front/ .* found folders: faces"):
        load_frll(tmp_path)
    _img(tmp_path / "neutral" / "002_03.jpg")
    _img(tmp_path / "neutral_front" / "002_03.jpg")
    with pytest.raises(ValueError, match="both the release layout"):
        load_frll(tmp_path)
    with pytest.raises(ValueError, match="unknown FRLL layout 'x'"):
        load_frll(tmp_path, layout="x")
    # one subject is not enough to morph
    with pytest.raises(ValueError, match=r"1 subject\(s\) with an enrolment image; at least 2"):
        load_frll(tmp_path, layout="release", probes=False)


def test_cli_pairs_with_loader(frll_set: Path, tmp_path: Path):
    from click.testing import CliRunner

    from morphlab.cli import main

    out = tmp_path / "pairs.csv"
    res = CliRunner().invoke(main, ["pairs", "--loader", "frll", str(frll_set),
                                    "--pairs-file", str(out),
                                    "--strategy", "same-gender", "-n", "5"])
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    assert len(lines) == 6 and all("neutral/" in ln for ln in lines[1:])
    res = CliRunner().invoke(main, ["pairs", "--loader", "fei", str(frll_set),
                                    "--pairs-file", str(out)])
    assert res.exit_code == 1 and "no FEI image found" in res.output
    res = CliRunner().invoke(main, ["pairs", "--loader", "frll", "--loader-param", "layout=release",
                                    str(frll_set), "--pairs-file", str(out)])
    assert res.exit_code == 1 and "neutral_front" in res.output
