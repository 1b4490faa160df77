"""The ONOT loader on small replicas (one folder per identity; a flat variant), broken ones."""

from __future__ import annotations

import logging
import zlib
from pathlib import Path

import numpy as np
import pytest

from morphlab.datasets.onot import load_onot
from morphlab.datasets.pairs import make_pairs
from morphlab.io import ImageError, write_image


def _img(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # distinct content per file: identical images are refused as one image
    rng = np.random.default_rng(zlib.crc32(str(path).encode()))
    write_image(path, rng.integers(0, 256, (8, 6, 3), dtype=np.uint8))
    return path


def _onot(root: Path, ids=("0001", "0002", "0003"), captures=("01", "02", "03")) -> Path:
    for i in ids:
        for c in captures:
            _img(root / "ONOT" / i / f"{c}.png")
    return root


def test_folder_per_identity(tmp_path: Path):
    ds = load_onot(_onot(tmp_path))
    assert ds.loader == "onot" and ds.subjects() == ["0001", "0002", "0003"]
    assert [ds.relpath(s) for s in ds.enrolment()] == [
        "ONOT/0001/01.png", "ONOT/0002/01.png", "ONOT/0003/01.png",
    ]
    assert [s.capture for s in ds.probes()["0002"]] == ["02", "03"]
    ps = make_pairs(ds, seed=3)
    assert len(ps) == 1 and ps.pairs[0].image_a.name == "01.png"
    # explicit roles; the images of neither role stay in the dataset without one
    ds = load_onot(tmp_path, enrolment="02", probes=["03"])
    assert {s.capture for s in ds.enrolment()} == {"02"}
    assert [s.role for s in ds.by_subject()["0001"]] == [None, "enrolment", "probe"]


def test_flat_layout_with_a_pattern(tmp_path: Path):
    for i in ("a7", "b9"):
        for c in ("1", "2"):
            _img(tmp_path / f"{i}_{c}.jpg")
    with pytest.raises(ValueError, match="one folder per identity .* pass pattern="):
        load_onot(tmp_path)
    ds = load_onot(tmp_path, pattern=r"^(?:.*/)?(?P<subject>[^/_]+)_(?P<capture>[^/]+)$")
    assert ds.subjects() == ["a7", "b9"] and len(ds.enrolment()) == 2
    assert ds.params["pattern"].startswith("^(?:.*/)?(?P<subject>")


def test_broken_layouts(tmp_path: Path, caplog):
    root = _onot(tmp_path, ids=("0001", "0002", "0003", "0004"))
    for c in ("02", "03"):
        (root / "ONOT" / "0004" / f"{c}.png").unlink()
    with pytest.raises(ValueError, match=r"1 of 4 identities lack images .*: 0004 \(1 image\(s\)\)"):
        load_onot(root)
    with caplog.at_level(logging.WARNING):
        ds = load_onot(root, allow_incomplete=True)
    assert "left out" in caplog.text and ds.subjects() == ["0001", "0002", "0003"]
    with pytest.raises(ValueError, match=r"0004 \(no capture '02'; has 01\)"):
        load_onot(root, enrolment="02", min_images=1)
    with pytest.raises(ValueError, match="min_images must be an integer >= 1"):
        load_onot(root, min_images=0)
    (root / "ONOT" / "0002" / "03.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ImageError, match="0002/03.png"):
        load_onot(root, allow_incomplete=True)
    with pytest.raises(FileNotFoundError, match="ONOT folder not found"):
        load_onot(tmp_path / "missing")
