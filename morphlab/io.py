"""Image reading and writing, content hashes and atomic writes.

Every image inside morphlab is a ``numpy.ndarray`` of shape ``(H, W, 3)``, dtype
``uint8``, channel order **RGB**. :func:`read_image` turns whatever is on disk into that
(honouring EXIF orientation; grey, palette, 16-bit and alpha images are converted
explicitly, see :func:`read_image`), and :func:`write_image` writes it back atomically.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io as _io
import logging
import os
import re
import tempfile
import threading
import warnings
from pathlib import Path
from typing import IO, Iterator, Optional, Union

import numpy as np

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: Default limit on the number of pixels of an image we agree to decode (decompression
#: bomb guard). 40 MP is far above any passport/ID photo or face-set image (FRLL: 1.8 MP;
#: a 36 MP camera frame still fits); raise it with the environment variable
#: :data:`MAX_PIXELS_ENV` or per call (``max_pixels=``).
DEFAULT_MAX_PIXELS = 40_000_000
#: Environment variable overriding :data:`DEFAULT_MAX_PIXELS` (an integer, e.g. ``100000000``).
MAX_PIXELS_ENV = "MORPHLAB_MAX_PIXELS"

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
_umask_guard = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it (Linux: ``/proc/self/status``).

    Elsewhere it is read by setting and restoring it under a lock (briefly the most
    restrictive mask, so a file another thread creates meanwhile is never too open).
    """
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_guard:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


#: fsync on a folder is not supported everywhere (some network and FUSE file systems).
_DIR_FSYNC_UNSUPPORTED = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF,
                          errno.EACCES, errno.EPERM, errno.EISDIR}


def fsync_dir(folder: PathLike) -> None:
    """fsync a folder, so that a rename or a new entry in it survives a power loss."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(folder, flags)
    except OSError as exc:
        if exc.errno in _DIR_FSYNC_UNSUPPORTED:
            return
        raise
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _DIR_FSYNC_UNSUPPORTED:
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "wb", *, durable: bool = True) -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success rename it over ``path``.

    A crash or exception leaves ``path`` untouched (either the old content or absent)
    and removes the temporary file. The data is fsync'ed before the rename, and the
    folder after it (the rename itself survives a power loss). The file gets the mode
    a plain ``open`` would give a new file: ``0o666`` minus the umask (0644 under the
    usual umask 022), not the 0600 of a temporary file.

    ``durable=False`` skips both fsyncs (~10 ms each here): for cache entries that are
    checked on reading, where a power loss may cost an entry (left empty or partial, then
    recomputed) but other processes still never see a half-written file.
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
            os.fchmod(fh.fileno(), 0o666 & ~current_umask())
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


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


def max_pixels_limit(max_pixels: Optional[int] = None) -> int:
    """The pixel limit in force: ``max_pixels`` if given, else ``$MORPHLAB_MAX_PIXELS``,
    else :data:`DEFAULT_MAX_PIXELS`.

    Raises:
        ValueError: the value (argument or environment variable) is not a positive integer.
    """
    if max_pixels is None:
        env = os.environ.get(MAX_PIXELS_ENV, "").strip().replace("_", "")
        if not env:
            return DEFAULT_MAX_PIXELS
        try:
            value = int(env)
        except ValueError:
            raise ValueError(
                f"{MAX_PIXELS_ENV}={os.environ[MAX_PIXELS_ENV]!r} is not an integer number of "
                "pixels (e.g. 100000000)"
            ) from None
        what = MAX_PIXELS_ENV
    else:
        value, what = max_pixels, "max_pixels"
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer number of pixels, got {value!r}")
    return value


def _open_checked(p: Path, limit: int):
    """``PIL.Image.open`` with the pixel limit applied to the header (nothing decoded).

    PIL's own decompression-bomb guard (a warning above ``Image.MAX_IMAGE_PIXELS``, an
    error above twice that) is replaced by the message below: it never escapes.
    """
    from PIL import Image

    def too_big(w: int, h: int) -> ImageError:
        return ImageError(
            f"{p}: image is {w}x{h} = {w * h:,} pixels, above the limit of {limit:,} "
            f"(possible decompression bomb; if the file is genuine, set {MAX_PIXELS_ENV} "
            "or pass max_pixels)"
        )

    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < limit:
        Image.MAX_IMAGE_PIXELS = limit  # PIL must not refuse what the user allowed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(p)
        except Image.DecompressionBombError as exc:
            png = _png_header(p)
            if png is not None:
                raise too_big(png[0], png[1]) from None
            m = re.search(r"\((\d+) pixels\)", str(exc))  # PIL: "Image size (N pixels) exceeds…"
            claim = f"{int(m.group(1)):,}" if m else f"more than {2 * Image.MAX_IMAGE_PIXELS:,}"
            raise ImageError(
                f"{p}: image header claims {claim} pixels, above the limit of {limit:,} "
                f"(possible decompression bomb; if the file is genuine, set {MAX_PIXELS_ENV} "
                "or pass max_pixels)"
            ) from None
    w, h = im.size
    if w * h > limit:
        im.close()
        raise too_big(w, h)
    if w == 0 or h == 0:
        im.close()
        raise ImageError(f"{p}: image has zero size ({w}x{h})")
    return im


def _check_path(p: Path) -> None:
    """The clear errors for a path that is not a readable regular file."""
    if not os.path.lexists(p):
        raise FileNotFoundError(f"{p}: image file not found")
    if not p.exists():
        raise FileNotFoundError(f"{p}: image file not found (dangling symbolic link)")
    if p.is_dir():
        raise ImageError(f"{p}: is a directory, not an image file")
    if not p.is_file():
        raise ImageError(f"{p}: not a regular file (a pipe, socket or device?)")


def image_size(path: PathLike, *, max_pixels: Optional[int] = None) -> tuple[int, int]:
    """Width and height of an image file from its header only (fast; nothing decoded).

    Applies the same checks as :func:`read_image` short of decoding: the file exists and
    is a regular file, is a recognised image, has a non-zero size within the pixel
    limit (:func:`max_pixels_limit`).

    Raises:
        FileNotFoundError: the file does not exist.
        ImageError: not a readable image, or too large.
    """
    from PIL import UnidentifiedImageError

    p = Path(path)
    _check_path(p)
    limit = max_pixels_limit(max_pixels)
    try:
        with _open_checked(p, limit) as im:
            return im.size
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{p}: not a recognised image file") from None
    except PermissionError as exc:
        raise ImageError(f"{p}: cannot be read ({exc.strerror})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{p}: unreadable image ({exc})") from None


def read_image(path: PathLike, *, max_pixels: Optional[int] = None) -> np.ndarray:
    """Read an image file as an RGB uint8 array ``(H, W, 3)``.

    JPEG, PNG, BMP, TIFF and WebP are supported. The EXIF orientation tag is applied.
    Conversions are explicit: grey (1/8/16-bit) is replicated to three channels, 16-bit
    values are scaled to 8 bits (``v * 255 / 65535``), palettes are expanded, and alpha is
    composited onto a white background.

    Args:
        path: the image file.
        max_pixels: refuse images with more pixels than this (decompression bombs);
            default ``$MORPHLAB_MAX_PIXELS``, else :data:`DEFAULT_MAX_PIXELS` (40 MP).
            The header is checked before anything is decoded.

    Raises:
        FileNotFoundError: the file does not exist.
        ImageError: the file is not a readable image, is truncated/corrupt, or too large
            (the message gives its size and the limit).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    _check_path(p)
    limit = max_pixels_limit(max_pixels)
    try:
        with _open_checked(p, limit) as im:
            fmt = im.format
            high_colour = fmt in ("PNG", "TIFF") and im.mode in ("RGB", "RGBA") and (
                "16" in str(im.info.get("bits", "")) or (_png_header(p) or (0, 0, 0))[2] == 16
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
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
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{p}: refused as a possible decompression bomb ({exc})") from None
    except PermissionError as exc:
        raise ImageError(f"{p}: cannot be read ({exc.strerror})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{p}: corrupt or truncated image ({exc})") from None


def _png_header(path: Path) -> Optional[tuple[int, int, int]]:
    """``(width, height, bit depth)`` from a PNG's IHDR chunk, or None if not a PNG.

    Pillow hides 16-bit colour depth, and refuses huge PNGs before telling their size.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(26)
    except OSError:
        return None
    if len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"), head[24]
    return None


# ----------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------
#: PNG compression of images written without an explicit one: zlib level 3, adaptive
#: row filters. Attack sets choose their own and record it (``png_compression`` in
#: run.json and the manifest).
DEFAULT_PNG_COMPRESSION = 3
#: The PNG speed preset: OpenCV's own default (row filter SUB, zlib level 1, strategy
#: RLE). Lossless like every level; on 1350² photos ~2.5x faster to encode than level 3
#: (33 vs 82 ms) for files ~45 % larger (1.34 vs 0.93 MB).
PNG_FAST = "fast"
#: The fpng encoder (https://github.com/richgel999/fpng, PyPI ``fpng``): a standard,
#: lossless 24-bit PNG any decoder reads, ~8x faster than :data:`PNG_FAST` on 1350²
#: photos (``benchmarks/throughput.py``'s "PNG encode" stage: 13 vs 108 ms for two) and
#: smaller (1.20 vs 1.27 MB). The default of new attack sets; it holds the GIL, so it
#: runs in the encode threads of each worker process.
PNG_FPNG = "fpng"
#: The presets (besides zlib levels 0-9).
PNG_PRESETS = (PNG_FAST, PNG_FPNG)


def encode_image(image: np.ndarray, suffix: str = ".png", *, quality: int = 95,
                 png_compression: Optional[int] = None) -> bytes:
    """Encode an RGB uint8 image to bytes in the format given by ``suffix``.

    Encoding is deterministic: the same array and settings give the same bytes (no
    timestamps).

    Args:
        image: ``(H, W, 3)`` RGB uint8.
        suffix: the format (``.png``, ``.jpg``, ``.webp``, ``.bmp``, ``.tif``).
        quality: JPEG / WebP quality.
        png_compression: PNG zlib level 0-9, :data:`PNG_FAST` or :data:`PNG_FPNG`
            (``None``: :data:`DEFAULT_PNG_COMPRESSION`); lossless at every setting, only
            speed and size change.
    """
    import cv2

    check_image(image, "image to encode")
    suffix = suffix.lower()
    params: list[int] = []
    if suffix in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    elif suffix == ".png":
        level = DEFAULT_PNG_COMPRESSION if png_compression is None else png_compression
        check_png_compression(level)
        if level == PNG_FPNG:
            import fpng

            if image.shape[2] != 3 or image.dtype != np.uint8:
                raise ImageError("the fpng encoder takes RGB uint8 images only")
            return bytes(fpng.from_ndarray(np.ascontiguousarray(image)))
        # no parameter at all selects OpenCV's speed preset (SUB filter, level 1, RLE)
        params = [] if level == PNG_FAST else [cv2.IMWRITE_PNG_COMPRESSION, int(level)]
    elif suffix == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, int(quality)]
    elif suffix not in (".bmp", ".tif", ".tiff"):
        raise ValueError(f"cannot write images with suffix {suffix!r}; use one of {IMAGE_SUFFIXES}")
    ok, buf = cv2.imencode(suffix, np.ascontiguousarray(image[:, :, ::-1]), params)
    if not ok:
        raise ImageError(f"OpenCV could not encode the image as {suffix}")
    return buf.tobytes()


def check_png_compression(level: object) -> None:
    """Raise ``ValueError`` unless ``level`` is a zlib level 0-9 or one of
    :data:`PNG_PRESETS`."""
    if isinstance(level, str) and level in PNG_PRESETS:
        return
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 0 <= level <= 9:
        raise ValueError(f"png_compression must be an integer 0-9, {PNG_FAST!r} or "
                         f"{PNG_FPNG!r}, got {level!r}")


def write_image(path: PathLike, image: np.ndarray, *, quality: int = 95,
                png_compression: Optional[int] = None) -> str:
    """Atomically write an RGB uint8 image; the format follows the suffix.

    Returns:
        The sha256 of the bytes written.
    """
    data = encode_image(image, Path(path).suffix or ".png", quality=quality,
                        png_compression=png_compression)
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
