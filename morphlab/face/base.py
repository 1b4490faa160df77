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


@dataclass(frozen=True)
class Face:
    """One detected face.

    Attributes:
        box: ``(4,)`` float64 ``x0, y0, x1, y1`` in pixels.
        landmarks: ``(N, 2)`` float64 ``(x, y)`` pixel coordinates.
        scheme: landmark scheme name, e.g. ``"dlib68"``.
        score: detector confidence (backend-specific scale; higher is more confident).
    """

    box: np.ndarray
    landmarks: np.ndarray
    scheme: str
    score: float = 1.0

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


def create_backend(name_or_class: str | type, **params) -> FaceBackend:
    """Instantiate a face backend by registered name or class."""
    return FACE_BACKENDS.create(name_or_class, **params)
