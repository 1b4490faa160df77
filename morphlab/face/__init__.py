"""Face analysis: detect faces, locate landmarks, align and crop.

Backends (``FACE_BACKENDS``): ``dlib`` (default), ``mediapipe``, ``face-alignment``,
``file``. Typical use::

    from morphlab.face import get_face, five_points
    face = get_face("dlib", "photo.jpg")          # cached by image content
    crop, M = similarity_align(image, five_points(face))
"""

from morphlab.face.align import (
    ARCFACE_TEMPLATE_112,
    estimate_similarity,
    icao_crop,
    similarity_align,
    transform_points,
)
from morphlab.face.base import (
    FACE_BACKENDS,
    Face,
    FaceBackend,
    FaceError,
    LandmarkError,
    MultipleFacesError,
    NoFaceError,
    choose_face,
    create_backend,
    validate_landmarks,
)
from morphlab.face.cache import default_cache_root, detect_cached, get_face
from morphlab.face.schemes import (
    COMPARABLE_POINTS,
    comparable_points,
    eye_centres,
    five_points,
    named_points,
)

#: The backend used when none is named.
DEFAULT_BACKEND = "dlib"

__all__ = [
    "ARCFACE_TEMPLATE_112",
    "COMPARABLE_POINTS",
    "DEFAULT_BACKEND",
    "FACE_BACKENDS",
    "Face",
    "FaceBackend",
    "FaceError",
    "LandmarkError",
    "MultipleFacesError",
    "NoFaceError",
    "choose_face",
    "comparable_points",
    "create_backend",
    "default_cache_root",
    "detect_cached",
    "estimate_similarity",
    "eye_centres",
    "five_points",
    "get_face",
    "icao_crop",
    "named_points",
    "similarity_align",
    "transform_points",
    "validate_landmarks",
]
