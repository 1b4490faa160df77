"""The FEI loader on small replicas of the two FEI layouts, including broken ones."""

from __future__ import annotations

import logging
import zlib
from pathlib import Path

import numpy as np
import pytest

from morphlab.datasets.fei import load_fei
from morphlab.datasets.pairs import make_pairs
from morphlab.io import ImageError, write_image


def _img(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # distinct content per file: identical images are refused as one image
    rng = np.random.default_rng(zlib.crc32(str(path).encode()))
    write_image(path, rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
    return path


def _original(root: Path, subjects=(1, 2, 3, 101)) -> Path:
    """``<subject>-<NN>.jpg``, 14 per subject, split over two 'part' folders as unpacked."""
    for s in subjects:
        part = "originalimages_part1" if s <= 50 else "originalimages_part3"
        for n in range(1, 15):
            _img(root / part / f"{s}-{n:02d}.jpg")
    return root


def _frontal(root: Path, subjects=(1, 2, 3)) -> Path:
    for s in subjects:
        _img(root / f"{s}a.jpg")
        _img(root / f"{s}b.jpg")
    return root


def test_original_subset_defaults(tmp_path: Path):
    ds = load_fei(_original(tmp_path))
    assert ds.loader == "fei" and ds.params["subset"] == "original"
    assert ds.subjects() == ["1", "101", "2", "3"] and len(ds.samples) == 4 * 14
    assert [s.path.name for s in ds.enrolment()] == ["1-11.jpg", "2-11.jpg", "3-11.jpg", "101-11.jpg"]
    assert {k: [s.path.name for s in v] for k, v in ds.probes().items()} == {
        "1": ["1-13.jpg"], "101": ["101-13.jpg"], "2": ["2-13.jpg"], "3": ["3-13.jpg"],
    }
    roles = {s.capture: s.role for s in ds.by_subject()["1"]}
    assert roles["11"] == "enrolment" and roles["13"] == "probe"
    assert all(roles[f"{n:02d}"] is None for n in (*range(1, 11), 12, 14))
    # pairs use the frontal neutral images, never a rotated view
    ps = make_pairs(ds, seed=0)
    assert len(ps) == 2
    assert all(p.image_a.name.endswith("-11.jpg") and p.image_b.name.endswith("-11.jpg")
               for p in ps.pairs)


def test_original_subset_other_images(tmp_path: Path):
    ds = load_fei(_original(tmp_path), enrolment="12", probes=["13", "14"])
    assert {s.path.name for s in ds.enrolment()} >= {"1-12.jpg"}
    assert [s.capture for s in ds.probes()["2"]] == ["13", "14"]
    with pytest.raises(ValueError, match="no image labelled '15'; labels are 01, 02"):
        load_fei(tmp_path, probes=["15"])
    with pytest.raises(ValueError, match="both the enrolment image and a probe"):
        load_fei(tmp_path, enrolment="13")


def test_frontal_subset(tmp_path: Path):
    ds = load_fei(_frontal(tmp_path))
    assert ds.params["subset"] == "frontal"
    assert [s.path.name for s in ds.enrolment()] == ["1a.jpg", "2a.jpg", "3a.jpg"]
    assert [v[0].path.name for v in ds.probes().values()] == ["1b.jpg", "2b.jpg", "3b.jpg"]
    with pytest.raises(ValueError, match="no image labelled '11'; labels are a, b"):
        load_fei(tmp_path, subset="frontal", enrolment="11")


def test_auto_prefers_the_original_images(tmp_path: Path, caplog):
    _original(tmp_path, subjects=(1, 2))
    _frontal(tmp_path, subjects=(1, 2))
    with caplog.at_level(logging.WARNING):
        ds = load_fei(tmp_path)
    assert ds.params["subset"] == "original" and len(ds.samples) == 28
    assert "4 image(s) skipped" in caplog.text  # the a/b files, named in the warning
    assert len(load_fei(tmp_path, subset="frontal").samples) == 4


def test_metadata(tmp_path: Path):
    _frontal(tmp_path / "fei")
    csv = tmp_path / "fei_gender.csv"
    csv.write_text("subject,sex\n1,M\n2,F\n3,m\n")
    ds = load_fei(tmp_path / "fei", metadata=csv)
    assert [s.gender for s in ds.enrolment()] == ["male", "female", "male"]
    ps = make_pairs(ds, strategy="same-gender", seed=0)
    assert {(p.subject_a, p.subject_b) for p in ps.pairs} <= {("1", "3"), ("3", "1")}


def test_broken_layouts(tmp_path: Path, caplog):
    with pytest.raises(FileNotFoundError, match="FEI folder not found"):
        load_fei(tmp_path / "nope")
    _img(tmp_path / "empty" / "portrait.jpg")
    with pytest.raises(ValueError, match="no FEI image found: expected <subject>-<NN>.jpg"):
        load_fei(tmp_path / "empty")
    root = _original(tmp_path / "fei", subjects=(1, 2, 3))
    # missing images of one subject: named, with the missing numbers
    (root / "originalimages_part1" / "2-13.jpg").unlink()
    (root / "originalimages_part1" / "2-04.jpg").unlink()
    with pytest.raises(ValueError, match=r"1 of 3 subject\(s\) of the FEI original subset are "
                                         r"incomplete: 2 \(no 04/13\)"):
        load_fei(root)
    with caplog.at_level(logging.WARNING):
        ds = load_fei(root, allow_incomplete=True)
    assert "no probe image" in caplog.text and sorted(ds.probes()) == ["1", "3"]
    # an image number the database does not have
    _img(root / "originalimages_part1" / "3-15.jpg")
    with pytest.raises(ValueError, match=r"unexpected capture labels for 1 subject\(s\).*3 \(15\)"):
        load_fei(root, allow_incomplete=True)
    (root / "originalimages_part1" / "3-15.jpg").unlink()
    # the same image twice (two parts unpacked over each other)
    _img(root / "originalimages_part3" / "1-01.jpg")
    with pytest.raises(ValueError, match="both give subject '1' with capture '01'"):
        load_fei(root, allow_incomplete=True)
    (root / "originalimages_part3" / "1-01.jpg").unlink()
    # an unreadable image
    (root / "originalimages_part1" / "3-11.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match="3-11.jpg"):
        load_fei(root, allow_incomplete=True)
