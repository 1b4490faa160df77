"""Image reading and writing, content hashes and atomic writes.

Every image inside morphlab is a ``numpy.ndarray`` of shape ``(H, W, 3)``, dtype
``uint8``, channel order **RGB**. :func:`read_image` turns whatever is on disk into that
(honouring EXIF orientation; grey, palette, 16-bit and alpha images are converted
explicitly, see :func:`read_image`), and :func:`write_image` writes it back atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import io as _io
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import IO, Iterator, Union

import numpy as np

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: Default limit on the number of pixels of an image we agree to decode (decompression
#: bomb guard). 100 MP is far above any passport/ID photo; override per call.
DEFAULT_MAX_PIXELS = 100_000_000

#: Suffixes read_image accepts (case-insensitive).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

#: Background alpha images are composited onto (white, as in ID photos).
ALPHA_BACKGROUND = (255, 255, 255)


class ImageError(ValueError):
    """An image file could not be used; the message names the file and the problem."""


# ----------------------------------------------------------------------------------------
# hashing
# ----------------------------------------------------------------------------------------
def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (streamed)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(chunk), b""):
                h.update(block)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    return h.hexdigest()


# ----------------------------------------------------------------------------------------
# atomic writes
# ----------------------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success rename it over ``path``.

    A crash or exception leaves ``path`` untouched (either the old content or absent)
    and removes the temporary file. The data is fsync'ed before the rename.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open supports modes 'w' and 'wb', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename)."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


# ----------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------
def _to_rgb_uint8(im, path: PathLike) -> np.ndarray:
    """Convert a loaded PIL image of any mode to an RGB uint8 array, explicitly."""
    from PIL import Image

    mode = im.mode
    if mode == "RGB":
        return np.asarray(im, dtype=np.uint8).copy()
    if mode == "P":
        # palette: expand, keeping transparency if the palette has any
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
        mode = im.mode
        if mode == "RGB":
            return np.asarray(im, dtype=np.uint8).copy()
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, ALPHA_BACKGROUND + (255,))
        return np.asarray(Image.alpha_composite(bg, rgba).convert("RGB"), dtype=np.uint8).copy()
    if mode in ("1", "L"):
        g = np.asarray(im.convert("L"), dtype=np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(im)
        if mode.startswith("I;16"):
            peak = 65535.0
        elif mode == "I":
            peak = 65535.0 if arr.max(initial=0) > 255 else 255.0
        else:  # float: assume [0, 1] if it fits, else its own range
            peak = 1.0 if arr.max(initial=0) <= 1.0 else float(arr.max())
        g = np.clip(np.round(arr.astype(np.float64) / peak * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    raise ImageError(f"{path}: unsupported image mode {mode!r}")


def _read_16bit_colour(path: PathLike) -> np.ndarray | None:
    """Pillow has no 48/64-bit colour modes; OpenCV reads them. Returns RGB uint8 or None."""
    import cv2

    arr = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
    if arr is None or arr.dtype != np.uint16 or arr.ndim != 3:
        return None
    arr = (arr >> 8).astype(np.uint8)
    if arr.shape[2] == 4:
        a = arr[:, :, 3:4].astype(np.float64) / 255.0
        arr = np.round(arr[:, :, :3] * a + np.array(ALPHA_BACKGROUND[::-1]) * (1 - a)).astype(np.uint8)
    return cv2.cvtColor(arr[:, :, :3], cv2.COLOR_BGR2RGB)


def read_image(path: PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as an RGB uint8 array ``(H, W, 3)``.

    JPEG, PNG, BMP, TIFF and WebP are supported. The EXIF orientation tag is applied.
    Conversions are explicit: grey (1/8/16-bit) is replicated to three channels, 16-bit
    values are scaled to 8 bits (``v * 255 / 65535``), palettes are expanded, and alpha is
    composited onto a white background.

    Args:
        path: the image file.
        max_pixels: refuse images with more pixels than this (decompression bombs).

    Raises:
        FileNotFoundError: the file does not exist.
        ImageError: the file is not a readable image, is truncated/corrupt, or too large.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: image file not found")
    if p.is_dir():
        raise ImageError(f"{p}: is a directory, not an image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise ImageError(
                        f"{p}: image is {w}x{h} = {w * h:,} pixels, above the limit of "
                        f"{max_pixels:,} (possible decompression bomb; raise max_pixels "
                        "if the file is genuine)"
                    )
                if w == 0 or h == 0:
                    raise ImageError(f"{p}: image has zero size ({w}x{h})")
                fmt = im.format
                high_colour = fmt in ("PNG", "TIFF") and im.mode in ("RGB", "RGBA") and (
                    "16" in str(im.info.get("bits", "")) or _png_bit_depth(p) == 16
                )
                im.load()
                im = ImageOps.exif_transpose(im)
                if high_colour:
                    arr = _read_16bit_colour(p)
                    if arr is not None:
                        return arr
                return _to_rgb_uint8(im, p)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(
            f"{p}: not a recognised image file (supported: {', '.join(IMAGE_SUFFIXES)})"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{p}: refused as a possible decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{p}: corrupt or truncated image ({exc})") from None


def _png_bit_depth(path: Path) -> int | None:
    """Bit depth from a PNG's IHDR chunk (Pillow hides 16-bit colour depth)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(26)
    except OSError:
        return None
    if len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return head[24]
    return None


# ----------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------
def encode_image(image: np.ndarray, suffix: str = ".png", *, quality: int = 95) -> bytes:
    """Encode an RGB uint8 image to bytes in the format given by ``suffix``.

    Encoding is deterministic: the same array gives the same bytes (no timestamps).
    """
    import cv2

    check_image(image, "image to encode")
    suffix = suffix.lower()
    params: list[int] = []
    if suffix in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    elif suffix == ".png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, 3]
    elif suffix == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, int(quality)]
    elif suffix not in (".bmp", ".tif", ".tiff"):
        raise ValueError(f"cannot write images with suffix {suffix!r}; use one of {IMAGE_SUFFIXES}")
    ok, buf = cv2.imencode(suffix, np.ascontiguousarray(image[:, :, ::-1]), params)
    if not ok:
        raise ImageError(f"OpenCV could not encode the image as {suffix}")
    return buf.tobytes()


def write_image(path: PathLike, image: np.ndarray, *, quality: int = 95) -> str:
    """Atomically write an RGB uint8 image; the format follows the suffix.

    Returns:
        The sha256 of the bytes written.
    """
    data = encode_image(image, Path(path).suffix or ".png", quality=quality)
    atomic_write_bytes(path, data)
    return sha256_bytes(data)


def check_image(image: np.ndarray, what: str = "image") -> None:
    """Raise ``ValueError`` unless ``image`` is an RGB uint8 ``(H, W, 3)`` array."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{what}: expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"{what}: expected an RGB uint8 array of shape (H, W, 3), got "
            f"{image.dtype} {image.shape}"
        )


def image_from_bytes(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode image bytes to RGB uint8 (used by tests and in-memory pipelines)."""
    from PIL import Image

    with Image.open(_io.BytesIO(data)) as im:
        im.load()
        return _to_rgb_uint8(im, name)
