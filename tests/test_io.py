"""Image I/O: formats, EXIF orientation, explicit conversions, bad files, atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from morphlab.io import (
    ImageError,
    atomic_open,
    atomic_write_text,
    encode_image,
    read_image,
    sha256_bytes,
    sha256_file,
    write_image,
)


@pytest.fixture()
def rgb() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
    img[:, :16] = (200, 30, 10)  # a flat red half survives lossy codecs
    return img


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".webp", ".jpg"])
def test_roundtrip_formats(tmp_path: Path, rgb: np.ndarray, suffix: str) -> None:
    p = tmp_path / f"x{suffix}"
    digest = write_image(p, rgb, quality=100)
    assert digest == sha256_file(p)
    back = read_image(p)
    assert back.shape == rgb.shape and back.dtype == np.uint8
    if suffix in (".png", ".bmp", ".tif"):
        np.testing.assert_array_equal(back, rgb)
    else:  # lossy: the flat red half stays red (channel order is RGB)
        assert abs(int(back[12, 4, 0]) - 200) < 12 and back[12, 4, 2] < 40


def test_real_photo(fixtures_dir: Path, sample_dir: Path) -> None:
    img = read_image(fixtures_dir / "frll_1350" / "neutral" / "002_03.jpg")
    assert img.shape == (1350, 1350, 3) and img.dtype == np.uint8
    img = read_image(sample_dir / "smiling" / "002_08.jpg")
    assert img.shape == (600, 600, 3) and img.dtype == np.uint8


def test_exif_orientation_applied(tmp_path: Path) -> None:
    arr = np.zeros((10, 20, 3), np.uint8)
    arr[:, :10] = 255  # left half white
    im = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise for display
    p = tmp_path / "rot.jpg"
    im.save(p, exif=exif, quality=100)
    out = read_image(p)
    assert out.shape == (20, 10, 3)  # rotated
    assert out[2, 5].mean() > 200 and out[17, 5].mean() < 50  # white half now on top


def test_grey_palette_16bit_alpha(tmp_path: Path) -> None:
    g = Image.fromarray(np.full((4, 5), 77, np.uint8), "L")
    g.save(tmp_path / "g.png")
    assert (read_image(tmp_path / "g.png") == 77).all()

    p16 = Image.fromarray(np.full((4, 5), 65535, np.uint16))
    p16.save(tmp_path / "g16.png")
    out = read_image(tmp_path / "g16.png")
    assert out.shape == (4, 5, 3) and (out == 255).all()

    pal = Image.fromarray(np.full((4, 5, 3), (10, 20, 30), np.uint8)).convert("P", palette=Image.Palette.ADAPTIVE)
    pal.save(tmp_path / "p.png")
    assert tuple(read_image(tmp_path / "p.png")[0, 0]) == (10, 20, 30)

    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :2, 3] = 255  # opaque red on the left, transparent (→ white) on the right
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert tuple(out[0, 0]) == (255, 0, 0) and tuple(out[0, 4]) == (255, 255, 255)

    import cv2

    c16 = np.zeros((4, 5, 3), np.uint16)
    c16[..., 2] = 65535  # BGR for OpenCV: red channel full
    cv2.imwrite(str(tmp_path / "c16.png"), c16)
    out = read_image(tmp_path / "c16.png")
    assert tuple(out[0, 0]) == (255, 0, 0)


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        read_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="directory"):
        read_image(tmp_path)


def test_not_an_image(tmp_path: Path) -> None:
    p = tmp_path / "fake.jpg"
    p.write_text("hello")
    with pytest.raises(ImageError, match="fake.jpg.*not a recognised image"):
        read_image(p)


def test_truncated(tmp_path: Path, fixtures_dir: Path) -> None:
    data = (fixtures_dir / "frll_1350" / "neutral" / "002_03.jpg").read_bytes()
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageError, match="cut.jpg.*(corrupt|truncated)"):
        read_image(p)


def test_pixel_limit(tmp_path: Path, rgb: np.ndarray) -> None:
    p = tmp_path / "big.png"
    write_image(p, rgb)
    with pytest.raises(ImageError, match="big.png.*decompression bomb"):
        read_image(p, max_pixels=100)


def test_encode_deterministic(rgb: np.ndarray) -> None:
    for suffix in (".png", ".jpg"):
        assert sha256_bytes(encode_image(rgb, suffix)) == sha256_bytes(encode_image(rgb, suffix))


def test_encode_rejects_bad_arrays() -> None:
    with pytest.raises(ValueError, match="RGB uint8"):
        encode_image(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="suffix"):
        encode_image(np.zeros((4, 4, 3), np.uint8), ".gif")


def test_atomic_write_leaves_old_content_on_failure(tmp_path: Path) -> None:
    p = tmp_path / "f.txt"
    atomic_write_text(p, "old")
    with pytest.raises(RuntimeError):
        with atomic_open(p, "w") as fh:
            fh.write("new and partial")
            raise RuntimeError("killed")
    assert p.read_text() == "old"
    assert [q.name for q in tmp_path.iterdir()] == ["f.txt"]  # no temp file left


def test_sha256_file_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="absent"):
        sha256_file(tmp_path / "absent")


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_honour_the_umask(tmp_path: Path, rgb: np.ndarray, umask: int,
                                        mode: int) -> None:
    """Issue 10 item 17: not the 0600 of the temporary file, whatever the umask."""
    import os
    import stat

    from morphlab.io import current_umask

    old = os.umask(umask)
    try:
        assert current_umask() == umask
        atomic_write_text(tmp_path / "a.txt", "x")
        write_image(tmp_path / "b.png", rgb)
        plain = tmp_path / "plain.txt"
        plain.write_text("x")  # what open() gives a new file
    finally:
        os.umask(old)
    for name in ("a.txt", "b.png", "plain.txt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_atomic_write_fsyncs_the_folder_after_the_rename(tmp_path: Path, monkeypatch) -> None:
    """Issue 10 item 22: the rename survives a power loss (the folder is fsync'ed after it)."""
    import os
    import stat

    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        events.append((kind, os.readlink(f"/proc/self/fd/{fd}") if kind == "dir" else None))
        return real_fsync(fd)

    def replace(a, b):
        events.append(("rename", None))
        return real_replace(a, b)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic_write_text(tmp_path / "sub" / "f.txt", "x")
    assert events == [("file", None), ("rename", None), ("dir", os.path.realpath(tmp_path / "sub"))]
    assert (tmp_path / "sub" / "f.txt").read_text() == "x"
    # durable=False (cache entries): the same rename, no fsync at all
    from morphlab.io import atomic_open

    events.clear()
    with atomic_open(tmp_path / "sub" / "g.bin", "wb", durable=False) as fh:
        fh.write(b"y")
    assert events == [("rename", None)]
    assert (tmp_path / "sub" / "g.bin").read_bytes() == b"y"


@pytest.mark.parametrize("level", ["fpng", "fast", 0, 3, 9])
def test_png_presets_are_lossless_deterministic_and_standard(sample_dir: Path, tmp_path: Path,
                                                             level) -> None:
    """Every PNG setting (the fpng encoder included) writes the exact pixels, the same
    bytes each time, as a standard PNG that Pillow and OpenCV both read."""
    import cv2

    from morphlab.io import encode_image, image_from_bytes, read_image

    img = read_image(sorted(sample_dir.rglob("*.jpg"))[0])
    noisy = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    for arr in (img, noisy, np.asfortranarray(img)):
        data = encode_image(arr, ".png", png_compression=level)
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert data == encode_image(arr.copy(), ".png", png_compression=level)
        assert np.array_equal(image_from_bytes(data), arr)
        p = tmp_path / "x.png"
        p.write_bytes(data)
        assert np.array_equal(np.asarray(Image.open(p).convert("RGB")), arr)
        assert np.array_equal(cv2.imread(str(p))[:, :, ::-1], arr)
