"""A cache of aligned detector crops keyed by image content and alignment settings.

``detect train|eval|calibrate|score`` cut the same MAD crop
(:func:`morphlab.detectors.preprocess.align_image`) from the same photos on every call;
decoding a 1350x1350 JPEG costs far more than the crop itself. This cache keeps each crop
once computed, losslessly, under ``<cache root>/crops/<2 hex>/<key>.npz`` — the cache root
of the landmark cache (``$MORPHLAB_CACHE`` or ``~/.cache/morphlab``,
:func:`morphlab.face.cache.default_cache_root`).

The entry name is the sha256 of :data:`CACHE_FORMAT`, the image file's sha256 and the
*settings key* — a string naming everything that changes the crop (landmark backend and
its version and options, crop size, alignment template and method version, the library
versions doing the warp; :func:`morphlab.detectors.preprocess.crop_settings_key`). So a
renamed or copied image hits, and any other setting misses.

Every entry records its image hash, settings key and the sha256 of the crop's pixels; an
entry whose file is truncated or corrupt, was written for another key, or whose pixels do
not match their hash is logged, ignored and recomputed — never trusted. Writes are atomic
(:func:`morphlab.io.atomic_open`: temporary file + rename), so concurrent runs computing
the same entry race to write identical content; they are not fsync'ed (``durable=False``:
a power loss can only leave an entry that fails those checks, and the fsyncs cost about as
much as the alignment itself); a cache that cannot be written (read-only, full) only costs
the speed-up.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Optional

import numpy as np

from morphlab.io import PathLike, atomic_open

log = logging.getLogger(__name__)

#: Bump when the on-disk entry layout changes (old entries are then simply not found).
CACHE_FORMAT = 1
#: Sub-folder of the cache root holding the crops.
SUBDIR = "crops"


def cache_root(cache_dir: Optional[PathLike] = None) -> Path:
    """The cache root: ``cache_dir`` if given, else the landmark cache's default root."""
    from morphlab.face.cache import default_cache_root

    return Path(cache_dir) if cache_dir is not None else default_cache_root()


def entry_path(root: Path, image_sha256: str, settings_key: str) -> Path:
    """Where the crop of an image (by content hash) under ``settings_key`` is stored."""
    key = hashlib.sha256(f"{CACHE_FORMAT}\n{image_sha256}\n{settings_key}".encode()).hexdigest()
    return root / SUBDIR / key[:2] / f"{key}.npz"


def _pixels_sha256(crop: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(crop).tobytes()).hexdigest()


def save_crop(path: Path, crop: np.ndarray, image_sha256: str, settings_key: str) -> None:
    """Store ``crop`` (uint8 ``(S, S, 3)``) atomically; an unwritable cache is a warning."""
    crop = np.ascontiguousarray(crop)
    try:
        with atomic_open(path, "wb", durable=False) as fh:
            np.savez(fh, image_sha256=np.array(image_sha256), settings_key=np.array(settings_key),
                     crop=crop, crop_sha256=np.array(_pixels_sha256(crop)))
    except OSError as exc:  # a read-only or full cache must not stop the work
        log.warning("could not write crop cache entry %s: %s", path, exc)


def load_crop(path: Path, image_sha256: str, settings_key: str, size: int) -> Optional[np.ndarray]:
    """The cached crop, or None when absent or unusable (a warning says why).

    Returns:
        RGB uint8 ``(size, size, 3)``, bit-identical to the crop that was stored.
    """
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["image_sha256"]) != image_sha256 or str(z["settings_key"]) != settings_key:
                raise ValueError("entry was written for another image or alignment setting")
            crop = z["crop"]
            stored_sha = str(z["crop_sha256"])
        if crop.dtype != np.uint8 or crop.shape != (size, size, 3):
            raise ValueError(f"crop is {crop.dtype} {crop.shape}, expected uint8 ({size}, {size}, 3)")
        if _pixels_sha256(crop) != stored_sha:
            raise ValueError("crop pixels do not match their recorded sha256")
        return crop
    except Exception as exc:  # any unreadable entry is recomputed, never fatal
        log.warning("ignoring unusable crop cache entry %s (%s: %s); recomputing",
                    path, type(exc).__name__, exc)
        return None
