"""Contact sheets: rows of labelled thumbnails (e.g. subject A | morph | subject B)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

import cv2
import numpy as np

from morphlab.io import check_image, read_image, write_image

ImageLike = Union[np.ndarray, str, Path]


def _thumb(img: ImageLike, height: int) -> np.ndarray:
    arr = read_image(img) if isinstance(img, (str, Path)) else img
    check_image(arr, "contact sheet tile")
    h, w = arr.shape[:2]
    width = max(1, round(w * height / h))
    return cv2.resize(arr, (width, height), interpolation=cv2.INTER_AREA)


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    bar_h = max(18, tile.shape[0] // 12)
    bar = np.full((bar_h, tile.shape[1], 3), 255, np.uint8)
    scale = bar_h / 30.0
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    while tw > tile.shape[1] - 4 and scale > 0.25:
        scale *= 0.9
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    org = (max(2, (tile.shape[1] - tw) // 2), (bar_h + th) // 2)
    cv2.putText(bar, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), 1, cv2.LINE_AA)
    return np.vstack([tile, bar])


def contact_sheet(
    rows: Sequence[Sequence[tuple[ImageLike, str]]],
    *,
    height: int = 200,
    gap: int = 6,
) -> np.ndarray:
    """Compose rows of ``(image, label)`` tiles into one RGB uint8 image.

    Args:
        rows: each row is a sequence of ``(image or path, label)``; rows may differ in length.
        height: thumbnail height in pixels (aspect kept).
        gap: white gap between tiles and rows.
    """
    if not rows:
        raise ValueError("contact_sheet: no rows to draw")
    rendered = []
    for row in rows:
        tiles = [_label(_thumb(img, height), label) for img, label in row]
        parts = []
        for i, t in enumerate(tiles):
            if i:
                parts.append(np.full((t.shape[0], gap, 3), 255, np.uint8))
            parts.append(t)
        rendered.append(np.hstack(parts))
    width = max(r.shape[1] for r in rendered)
    out = []
    for i, r in enumerate(rendered):
        if i:
            out.append(np.full((gap, width, 3), 255, np.uint8))
        pad = np.full((r.shape[0], width - r.shape[1], 3), 255, np.uint8)
        out.append(np.hstack([r, pad]))
    return np.vstack(out)


def write_contact_sheet(path: str | Path, rows, **kw) -> Path:
    """Draw :func:`contact_sheet` and write it atomically (format from the suffix)."""
    write_image(path, contact_sheet(rows, **kw))
    return Path(path)
