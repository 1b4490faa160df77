"""The face-analysis interface: detect faces, return landmarks, align/crop.

Coordinates are always ``(x, y)`` in pixels of the image given, as ``float64``
arrays of shape ``(N, 2)``. Each backend declares its landmark ``scheme`` (``"dlib68"``,
``"mediapipe468"``, ``"fan68"``, ``"tem189"``…); :mod:`morphlab.face.schemes` maps every
scheme to the semantic points other modules need (eye centres, the 5 ArcFace points).
"""

from __future__ import annotations

import logging
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal, Optional

import numpy as np

from morphlab._registry import Registry

log = logging.getLogger(__name__)

#: Face-analysis backends; plug-ins use the ``morphlab.face`` entry-point group.
FACE_BACKENDS: Registry = Registry(
    "face backend",
    "morphlab.face",
    builtins=(
        "morphlab.face.dlib_backend",
        "morphlab.face.mediapipe_backend",
        "morphlab.face.fan_backend",
        "morphlab.face.file_backend",
    ),
)

MultiplePolicy = Literal["largest", "error"]


class FaceError(ValueError):
    """Base class for face-analysis failures on a given image (message names the file)."""


class NoFaceError(FaceError):
    """No face was found in the image."""


class MultipleFacesError(FaceError):
    """Several faces were found and the policy is ``"error"``."""


class LandmarkError(FaceError):
    """Landmarks that cannot describe a face: non-finite, all equal, on one line, or
    outside the image (the message names their source and the problem)."""


#: Landmarks whose spread (RMS distance from their best-fit line) is below this many
#: pixels lie on one line (or one point): no face is that flat.
MIN_LANDMARK_SPREAD = 1.0
#: Landmarks may stick out of the image a little (a jaw line cut by the frame), but not
#: more than this fraction of the image's larger side, and at least half must lie inside.
LANDMARK_MARGIN = 0.25


def validate_landmarks(
    points: np.ndarray,
    image_shape: Optional[tuple[int, ...]] = None,
    where: str = "landmarks",
    error: type[FaceError] = LandmarkError,
) -> np.ndarray:
    """Check that landmarks can describe a face; the one place this is decided.

    Args:
        points: ``(N, 2)`` ``(x, y)`` pixel coordinates.
        image_shape: ``(H, W[, C])`` of the image they belong to; without it the
            inside-the-image check is skipped.
        where: what the message names (the landmark file, the image, "subject A …").
        error: the exception class raised (a :class:`FaceError`).

    Returns:
        The points as ``float64`` ``(N, 2)``.

    Raises:
        LandmarkError: (a FaceError, so a per-pair failure in ``generate``) fewer than 3
            points, NaN/inf, all points equal, all on one line (spread below
            :data:`MIN_LANDMARK_SPREAD` px), fewer than half inside the image, or a
            point farther outside than :data:`LANDMARK_MARGIN` of the image size.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3:
        raise error(f"{where}: expected at least 3 landmarks of shape (N, 2), got {pts.shape}")
    bad = ~np.isfinite(pts).all(axis=1)
    if bad.any():
        raise error(
            f"{where}: {int(bad.sum())} of {len(pts)} landmarks are NaN or infinite "
            f"(first: point {int(np.flatnonzero(bad)[0])})"
        )
    centred = pts - pts.mean(axis=0)
    spread = np.linalg.svd(centred, compute_uv=False) / np.sqrt(len(pts))
    if spread[0] < MIN_LANDMARK_SPREAD:
        x, y = pts[0]
        raise error(f"{where}: all {len(pts)} landmarks are (nearly) the same point ({x:.1f}, {y:.1f})")
    if spread[1] < MIN_LANDMARK_SPREAD:
        raise error(
            f"{where}: all {len(pts)} landmarks lie on one line (spread {spread[1]:.2g} px "
            "across it); they cannot describe a face"
        )
    if image_shape is not None:
        h, w = int(image_shape[0]), int(image_shape[1])
        inside = (pts[:, 0] >= 0) & (pts[:, 0] <= w) & (pts[:, 1] >= 0) & (pts[:, 1] <= h)
        m = LANDMARK_MARGIN * max(w, h)
        far = (pts[:, 0] < -m) | (pts[:, 0] > w + m) | (pts[:, 1] < -m) | (pts[:, 1] > h + m)
        if inside.mean() < 0.5 or far.any():
            k = int(np.flatnonzero(far)[0] if far.any() else np.flatnonzero(~inside)[0])
            raise error(
                f"{where}: {int((~inside).sum())} of {len(pts)} landmarks lie outside the "
                f"{w}x{h} image (e.g. point {k} at ({pts[k, 0]:.1f}, {pts[k, 1]:.1f})); "
                "they seem to belong to another image or resolution"
            )
    return pts


@dataclass(frozen=True)
class Face:
    """One detected face.

    Attributes:
        box: ``(4,)`` float64 ``x0, y0, x1, y1`` in pixels.
        landmarks: ``(N, 2)`` float64 ``(x, y)`` pixel coordinates.
        scheme: landmark scheme name, e.g. ``"dlib68"``.
        score: detector confidence (backend-specific scale; higher is more confident).
        source: where the landmarks were read from when that is a file of its own (the
            ``file`` backend's sidecar), for messages; else ``None``.
    """

    box: np.ndarray
    landmarks: np.ndarray
    scheme: str
    score: float = 1.0
    source: Optional[str] = None

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return float(max(0.0, x1 - x0) * max(0.0, y1 - y0))


class FaceBackend(ABC):
    """A face detector + landmark locator.

    Subclasses set ``name``, ``version`` and ``scheme`` and implement :meth:`detect`.
    ``__init__`` takes keyword options only.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0"
    scheme: ClassVar[str] = ""
    #: Whether :func:`morphlab.face.cache.get_face` may cache results by image content.
    #: False for backends whose output depends on more than the pixels (sidecar files).
    cacheable: ClassVar[bool] = True

    @abstractmethod
    def detect(self, image: np.ndarray, *, source: Optional[Path] = None) -> list[Face]:
        """All faces in an RGB uint8 image, largest first (empty list if none).

        ``source`` is the image's file path when known (the ``file`` backend needs it).
        """

    def cache_key(self) -> str:
        """Identifies this backend's output for the landmark cache (name, version, options)."""
        return f"{self.name}-{self.version}"

    def landmarks(
        self,
        image: np.ndarray,
        *,
        source: Optional[Path] = None,
        multiple: MultiplePolicy = "largest",
    ) -> Face:
        """The one face to use in ``image``.

        No face raises :class:`NoFaceError`; several faces return the largest with a
        warning, or raise :class:`MultipleFacesError` when ``multiple="error"``.
        """
        faces = self.detect(image, source=source)
        return choose_face(faces, source=source, backend=self.name, multiple=multiple)


def choose_face(
    faces: list[Face],
    *,
    source: Optional[Path] = None,
    backend: str = "",
    multiple: MultiplePolicy = "largest",
) -> Face:
    """Apply the several-faces policy to a detection result (see :meth:`FaceBackend.landmarks`).

    Args:
        faces: the faces a backend detected in one image.
        source: the image's path, for messages.
        backend: the backend's name, for messages.
        multiple: ``"largest"`` (warn and return the largest) or ``"error"``.

    Raises:
        NoFaceError: ``faces`` is empty.
        MultipleFacesError: several faces and ``multiple="error"``.
    """
    if multiple not in ("largest", "error"):
        raise ValueError(f"multiple must be 'largest' or 'error', got {multiple!r}")
    where = str(source) if source is not None else "image"
    if not faces:
        raise NoFaceError(f"{where}: no face found by the {backend!r} backend")
    if len(faces) > 1:
        if multiple == "error":
            raise MultipleFacesError(
                f"{where}: {len(faces)} faces found by the {backend!r} backend; "
                "crop the image to one face or allow the largest to be used"
            )
        warnings.warn(
            f"{where}: {len(faces)} faces found by the {backend!r} backend; using the largest",
            RuntimeWarning,
            stacklevel=3,
        )
    return max(faces, key=lambda f: f.area)


def option_number(name: str, value: object, kind: type = float, minimum: Optional[float] = None,
                  maximum: Optional[float] = None) -> float:
    """A backend option as ``kind`` (int or float), or a ValueError naming the option.

    Integers must be whole (``2.0`` is accepted, ``2.5`` and ``"a"`` are not); booleans
    are refused; ``minimum``/``maximum`` bound the value inclusively.
    """
    what = "an integer" if kind is int else "a number"
    try:
        if isinstance(value, bool):
            raise TypeError
        v = float(value)  # strings of numbers are accepted (--param values are text)
        if not np.isfinite(v) or (kind is int and v != int(v)):
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {what}, got {value!r}") from None
    out = int(v) if kind is int else v
    if (minimum is not None and out < minimum) or (maximum is not None and out > maximum):
        lo = "-inf" if minimum is None else f"{minimum:g}"
        hi = "inf" if maximum is None else f"{maximum:g}"
        raise ValueError(f"{name} must be {what} in [{lo}, {hi}], got {value!r}")
    return out


def create_backend(name_or_class: str | type, **params) -> FaceBackend:
    """Instantiate a face backend by registered name or class.

    Raises:
        KeyError: unknown name (the message lists the valid ones).
        ValueError: options the backend refuses; the message names the backend and the
            options given (a bare "could not convert string to float" never escapes).
    """
    cls = FACE_BACKENDS.get(name_or_class) if isinstance(name_or_class, str) else name_or_class
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        name = name_or_class if isinstance(name_or_class, str) else getattr(cls, "name", cls.__name__)
        given = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "no options"
        raise ValueError(f"face backend {name!r} ({given}): {exc}") from None
