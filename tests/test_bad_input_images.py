"""Bad image input: decompression bombs, the pixel limit, odd folder entries, odd names.

Inputs are generated here and tiny (a bomb is a ~70-byte PNG whose header claims
100000x100000 pixels).
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from morphlab.datasets.folder import list_images, load_folder
from morphlab.io import (
    DEFAULT_MAX_PIXELS,
    MAX_PIXELS_ENV,
    ImageError,
    image_size,
    max_pixels_limit,
    read_image,
    write_image,
)


def png_bomb(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A valid PNG signature + IHDR claiming ``width x height`` pixels, a tiny IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _img(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(zlib.crc32(os.fsencode(path)) + value)
    write_image(path, rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    return path


# ----------------------------------------------------------------------------------------
# the pixel limit (items 15, 21)
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(100_000, 100_000), (8_000, 6_000)], ids=["huge", "48MP"])
def test_bomb_png_is_refused_with_its_size(tmp_path: Path, size):
    p = png_bomb(tmp_path / "bomb.png", *size)
    assert p.stat().st_size < 200
    w, h = size
    for fn in (read_image, image_size):
        with pytest.raises(ImageError) as info:
            fn(p)
        msg = str(info.value)
        assert str(p) in msg and f"{w}x{h}" in msg and f"{DEFAULT_MAX_PIXELS:,}" in msg
        assert "\n" not in msg


def test_jpeg_bomb_header_states_the_claimed_size(tmp_path: Path):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.find(b"\xff\xc0")  # baseline frame header: height, width at +5, +7
    data[sof + 5 : sof + 9] = (65000).to_bytes(2, "big") * 2
    p = tmp_path / "bomb.jpg"
    p.write_bytes(bytes(data))
    with pytest.raises(ImageError) as info:
        read_image(p)
    msg = str(info.value)
    assert str(p) in msg and "4,225,000,000 pixels" in msg and "40,000,000" in msg


def test_default_limit_is_40_megapixels_and_configurable(tmp_path: Path, monkeypatch):
    assert DEFAULT_MAX_PIXELS == 40_000_000
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    assert max_pixels_limit() == 40_000_000
    p = png_bomb(tmp_path / "b.png", 8_000, 6_000)  # 48 MP: header fine, data truncated
    with pytest.raises(ImageError, match="above the limit of 40,000,000"):
        read_image(p)
    monkeypatch.setenv(MAX_PIXELS_ENV, "50_000_000")
    assert max_pixels_limit() == 50_000_000
    assert image_size(p) == (8_000, 6_000)  # allowed now; decoding fails on the data only
    with pytest.raises(ImageError, match="corrupt or truncated"):
        read_image(p)
    assert max_pixels_limit(10) == 10  # the argument wins over the environment
    small = _img(tmp_path / "s.png")
    with pytest.raises(ImageError, match=r"8x8 = 64 pixels, above the limit of 10\b"):
        read_image(small, max_pixels=10)
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(ValueError, match="MORPHLAB_MAX_PIXELS='lots' is not an integer"):
        read_image(small)
    with pytest.raises(ValueError, match="positive integer"):
        max_pixels_limit(0)


def test_a_limit_above_pils_own_guard_is_honoured(tmp_path: Path, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL would refuse 64 x 64
    p = tmp_path / "ok.png"
    write_image(p, np.zeros((64, 64, 3), np.uint8))
    assert read_image(p).shape == (64, 64, 3)


def test_special_files_are_clear_errors(tmp_path: Path):
    os.symlink(tmp_path / "nowhere.jpg", tmp_path / "dangling.jpg")
    with pytest.raises(FileNotFoundError, match="dangling symbolic link"):
        read_image(tmp_path / "dangling.jpg")
    os.mkfifo(tmp_path / "pipe.jpg")
    with pytest.raises(ImageError, match="not a regular file"):
        read_image(tmp_path / "pipe.jpg")  # must not block on the pipe


def test_pairs_cli_bomb_is_one_line_naming_the_file(tmp_path: Path):
    from morphlab.cli import main

    data = tmp_path / "data"
    for s in ("001", "002", "003"):
        _img(data / f"{s}_03.png")
    bomb = png_bomb(data / "004_03.png")
    res = CliRunner().invoke(main, ["pairs", str(data), "--pairs-file", str(tmp_path / "p.csv")])
    assert res.exit_code == 1, res.output
    assert isinstance(res.exception, SystemExit)  # a ClickException, not a traceback
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and str(bomb) in lines[0]
    assert "100000x100000" in lines[0]


# ----------------------------------------------------------------------------------------
# folder listings (item 18) and non-UTF-8 names (item 16)
# ----------------------------------------------------------------------------------------
def test_odd_entries_are_counted_and_warned_once(tmp_path: Path, caplog):
    for s in ("001", "002"):
        _img(tmp_path / f"{s}_03.png")
    (tmp_path / "001_03.tem").write_text("1\n1\t1\n")  # a companion file: not reported
    os.symlink(tmp_path / "nowhere.jpg", tmp_path / "dangling.jpg")
    os.symlink(".", tmp_path / "loop")  # a folder link back to the root
    (tmp_path / "sub").mkdir()
    _img(tmp_path / "sub" / "003_03.png")
    os.symlink(tmp_path / "sub", tmp_path / "again")  # the same folder a second time
    os.symlink("self.jpg", tmp_path / "self.jpg")  # a link to itself (ELOOP)
    os.mkfifo(tmp_path / "pipe.jpg")
    (tmp_path / "folder.jpg").mkdir()
    _img(tmp_path / "folder.jpg" / "005_03.png")  # inside a folder named like an image
    (tmp_path / "anim.gif").write_bytes(b"GIF89a")
    with caplog.at_level(logging.WARNING, logger="morphlab"):
        ds = load_folder(tmp_path)
    assert [s.subject for s in ds.samples] == ["001", "002", "003"]
    assert ds.samples[2].path.parent.name == "sub"  # listed once, under its own path
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    msg = warnings[0]
    assert "7 entries skipped" in msg
    assert "link(s) to a folder listed already (again/)" in msg
    for needle in ("dangling symbolic link(s) (dangling.jpg)", "symbolic-link loop(s)",
                   "loop/", "self.jpg", "pipe(s), socket(s) or device(s) (pipe.jpg)",
                   "folder(s) named like an image (folder.jpg/)",
                   "unsupported format (anim.gif)"):
        assert needle in msg, needle
    assert ".tem" not in msg


def test_many_skipped_entries_show_a_few_examples(tmp_path: Path, caplog):
    _img(tmp_path / "001_03.png")
    for k in range(12):
        (tmp_path / f"x{k:02d}.gif").write_bytes(b"GIF89a")
    with caplog.at_level(logging.WARNING, logger="morphlab"):
        list_images(tmp_path)
    msg = caplog.records[-1].getMessage()
    assert "12 file(s) of an unsupported format" in msg and "(12 in all)" in msg
    assert "x00.gif" in msg and "x11.gif" not in msg


def test_non_utf8_image_name_is_shown_with_escapes(tmp_path: Path, caplog):
    for s in ("001", "002"):
        _img(tmp_path / f"{s}_03.png")
    raw = os.path.join(os.fsencode(tmp_path), b"caf\xe9_03.png")
    with open(raw, "wb") as fh:
        fh.write((tmp_path / "001_03.png").read_bytes())
    with caplog.at_level(logging.WARNING, logger="morphlab"):
        ds = load_folder(tmp_path)
    assert [s.subject for s in ds.samples] == ["001", "002"]
    msg = caplog.records[-1].getMessage()
    assert str(tmp_path) in msg and "caf\\xe9_03.png" in msg and "not valid UTF-8" in msg
    msg.encode("utf-8")  # printable: no surrogate escapes left


def test_pairs_cli_with_non_utf8_name_writes_a_valid_file(tmp_path: Path, caplog):
    from morphlab.cli import main

    data = tmp_path / "data"
    for s in ("001", "002", "003"):
        _img(data / f"{s}_03.png")
    with open(os.path.join(os.fsencode(data), b"\xff\xfe_03.png"), "wb") as fh:
        fh.write((data / "001_03.png").read_bytes()[:-1] + b"\x00")
    out = tmp_path / "p.csv"
    with caplog.at_level(logging.WARNING, logger="morphlab"):
        res = CliRunner().invoke(main, ["pairs", str(data), "--pairs-file", str(out), "--per-subject", "2"])
    assert res.exit_code == 0, res.output  # was: UnicodeEncodeError writing the CSV
    assert "\\xff\\xfe_03.png" in caplog.text
    out.read_text(encoding="utf-8")


def test_non_utf8_dataset_folder_is_named_with_escapes(tmp_path: Path):
    from morphlab.datasets.pairs import PairsError, read_pairs

    raw = os.path.join(os.fsencode(tmp_path), b"d\xffs")
    os.mkdir(raw)
    root = Path(os.fsdecode(raw))
    for s in ("001", "002"):
        _img(root / f"{s}_03.png")
    with pytest.raises(ValueError) as info:
        load_folder(root)
    msg = str(info.value)
    assert "d\\xffs" in msg and "not valid UTF-8" in msg
    msg.encode("utf-8")
    p = tmp_path / "pairs.csv"
    p.write_text("pair_id,subject_a,image_a,subject_b,image_b\n1,001,001_03.png,002,002_03.png\n")
    with pytest.raises(PairsError, match=r"pairs\.csv: .*d\\xffs: the dataset folder's path is not valid UTF-8"):
        read_pairs(p, dataset_dir=root)
