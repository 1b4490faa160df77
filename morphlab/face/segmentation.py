"""Person segmentation: replace an image's background with a uniform colour.

The one implementation behind the ``background`` post-processing operator and the
``background`` option of the ``arc2face`` generator (Arc2Morph removes backgrounds), so a
morph and a bona fide image get exactly the same treatment.

The person mask comes from mediapipe 0.10.21's selfie segmentation (``general``: the
256x256 model, ``landscape``: 144x256; both ship inside the package, so this runs
offline). The mask is smoothed with a Gaussian of ``feather`` x the shorter image side,
values below 1/255 set to 0 and above 254/255 to 1, and the image is composited over
the colour: ``out = mask * image + (1 - mask) * colour``, rounded. Everything outside
the person is exactly ``colour``. Deterministic: same pixels, same output.
"""

from __future__ import annotations

import os
from typing import Any, Sequence, Union

import numpy as np

#: Segmentation models: mediapipe's ``model_selection`` 0 / 1.
BACKGROUND_MODELS = {"general": 0, "landscape": 1}
#: The default background: the light grey of ICAO-style ID photos.
DEFAULT_COLOUR = (240, 240, 240)

_SEGMENTERS: dict[tuple[int, int], Any] = {}


def parse_colour(value: Union[str, Sequence[int]], what: str = "colour") -> tuple[int, int, int]:
    """``"240,240,240"`` / ``[240, 240, 240]`` → ``(240, 240, 240)``.

    Raises:
        ValueError: not three integers in 0..255 (the message names ``what``).
    """
    parts = value.split(",") if isinstance(value, str) else value
    try:
        rgb = tuple(int(str(v).strip()) for v in parts)
    except (TypeError, ValueError):
        rgb = ()
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise ValueError(f"{what} must be an RGB colour R,G,B (0-255 each), got {value!r}")
    return rgb  # type: ignore[return-value]


def _segmenter(model: int):
    """mediapipe's selfie segmentation, one per process and model."""
    key = (os.getpid(), model)
    if key not in _SEGMENTERS:
        try:
            from mediapipe.python.solutions import selfie_segmentation
        except ImportError as exc:  # pragma: no cover - mediapipe is a core dependency
            raise ImportError(f"background: needs mediapipe==0.10.21 ({exc})") from None
        _SEGMENTERS[key] = selfie_segmentation.SelfieSegmentation(model_selection=model)
    return _SEGMENTERS[key]


def person_mask(image: np.ndarray, *, model: str = "general", feather: float = 0.004) -> np.ndarray:
    """``(H, W)`` float32 person mask in [0, 1] (1 = person), feathered and clamped.

    Args:
        image: RGB uint8 ``(H, W, 3)``.
        model: ``general`` or ``landscape``.
        feather: Gaussian sigma as a fraction of the shorter side (0 = hard edge).
    """
    import cv2

    if model not in BACKGROUND_MODELS:
        raise ValueError(f"background: model must be one of {', '.join(BACKGROUND_MODELS)}, "
                         f"got {model!r}")
    res = _segmenter(BACKGROUND_MODELS[model]).process(np.ascontiguousarray(image))
    m = res.segmentation_mask
    if m is None:
        raise ValueError("background: the segmentation returned no mask")
    m = np.clip(np.asarray(m, dtype=np.float32), 0.0, 1.0)
    sigma = feather * min(image.shape[:2])
    if sigma > 0:
        m = cv2.GaussianBlur(m, (0, 0), sigma)
    m[m < 1.0 / 255] = 0.0
    m[m > 254.0 / 255] = 1.0
    return m


def composite(image: np.ndarray, mask: np.ndarray, colour: Sequence[int]) -> np.ndarray:
    """``mask * image + (1 - mask) * colour``, rounded to uint8 (``mask``: ``(H, W)``)."""
    m = np.asarray(mask, dtype=np.float32)[..., None]
    c = np.asarray(colour, dtype=np.float32)
    out = m * image.astype(np.float32) + (1.0 - m) * c
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def replace_background(image: np.ndarray, colour: Sequence[int] = DEFAULT_COLOUR, *,
                       model: str = "general", feather: float = 0.004
                       ) -> tuple[np.ndarray, dict]:
    """The image with its background replaced by ``colour``, and what was done.

    Returns:
        ``(image, notes)``; notes: ``{"colour": [r, g, b], "foreground_fraction": f}``.
    """
    m = person_mask(image, model=model, feather=feather)
    notes = {"colour": [int(v) for v in colour],
             "foreground_fraction": round(float(m.mean()), 6)}
    return composite(image, m, colour), notes
