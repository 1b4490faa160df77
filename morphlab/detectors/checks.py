"""Input validation shared by every detector: aligned crops, D-MAD pairs, training labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _check_crop(x: Any, where: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(
            f"{where}: expected an aligned RGB uint8 face crop of shape (H, W, 3), got "
            f"{a.dtype} {a.shape} (use morphlab.detectors.preprocess.align_faces)"
        )
    return a


def check_images(images: Any, *, what: str = "images") -> np.ndarray:
    """Validate an S-MAD batch and return it as one ``(N, H, W, 3)`` uint8 array.

    Raises:
        ValueError: empty batch, a crop that is not RGB uint8 ``(H, W, 3)``, or crops of
            different sizes.
    """
    if isinstance(images, np.ndarray) and images.ndim == 4:
        batch = [images[i] for i in range(len(images))]
    elif isinstance(images, (str, Path)) or (isinstance(images, np.ndarray) and images.ndim < 4):
        raise ValueError(
            f"{what}: expected a sequence of aligned face crops or an (N, H, W, 3) uint8 "
            f"array, got {type(images).__name__} {getattr(images, 'shape', '')}".rstrip()
        )
    else:
        batch = list(images)
    if not batch:
        raise ValueError(f"{what}: no images given")
    crops = [_check_crop(x, f"{what}[{i}]") for i, x in enumerate(batch)]
    shapes = {c.shape for c in crops}
    if len(shapes) > 1:
        raise ValueError(
            f"{what}: all crops must have one size, got {sorted(shapes)}; align them with "
            "morphlab.detectors.preprocess.align_faces(size=...)"
        )
    return np.stack(crops)


def check_pairs(pairs: Any, *, what: str = "pairs") -> np.ndarray:
    """Validate a D-MAD batch and return it as one ``(N, 2, H, W, 3)`` uint8 array.

    Each pair is ``(suspected, live)``; both crops must share one size.
    """
    if isinstance(pairs, np.ndarray):
        if pairs.ndim != 5 or pairs.shape[1] != 2:
            raise ValueError(
                f"{what}: expected (suspected, live) pairs as an (N, 2, H, W, 3) uint8 array "
                f"or a sequence of 2-tuples, got an array of shape {pairs.shape}"
            )
        flat = check_images(pairs.reshape((-1,) + pairs.shape[2:]), what=what)
        return flat.reshape(pairs.shape)
    items = list(pairs)
    if not items:
        raise ValueError(f"{what}: no pairs given")
    for i, p in enumerate(items):
        if isinstance(p, np.ndarray) and p.ndim == 4 and p.shape[0] == 2:
            continue
        if not isinstance(p, (tuple, list)) or len(p) != 2:
            raise ValueError(f"{what}[{i}]: expected a (suspected, live) pair of face crops")
    flat = check_images([c for p in items for c in p], what=what)
    return flat.reshape((len(items), 2) + flat.shape[1:])


def check_labels(labels: Any, n: int) -> np.ndarray:
    """Validate training labels: ``n`` values in {0, 1} with both classes present.

    Returns:
        ``(n,)`` int64 array (1 = morph, 0 = bona fide).
    """
    if labels is None:
        raise ValueError("fit needs labels (1 = morph, 0 = bona fide); got None")
    y = np.asarray(labels)
    if y.ndim != 1 or y.size != n:
        raise ValueError(f"got {n} training samples but labels of shape {y.shape}")
    if y.dtype == bool:
        y = y.astype(np.int64)
    if y.dtype.kind not in "iuf" or not np.isin(y, (0, 1)).all():
        bad = sorted({str(v) for v in np.unique(y)} - {"0", "1", "0.0", "1.0"})[:5]
        raise ValueError(f"labels must be 0 (bona fide) or 1 (morph); found {', '.join(bad)}")
    y = y.astype(np.int64)
    n_morph = int(y.sum())
    if n_morph == 0 or n_morph == n:
        missing = "morph (label 1)" if n_morph == 0 else "bona fide (label 0)"
        raise ValueError(
            f"training data has a single class: all {n} samples are "
            f"{'bona fide' if n_morph == 0 else 'morphs'}; add {missing} samples"
        )
    return y
