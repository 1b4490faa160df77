"""Semantic points of each landmark scheme: eye centres, the 5 ArcFace points.

Every function takes a :class:`~morphlab.face.base.Face` (or anything with ``landmarks``
and ``scheme``) and returns ``float64`` ``(x, y)`` pixel coordinates. "Left" and "right"
are **image** left/right (the subject's right eye is the image-left eye), the ordering
insightface uses for its 5-point alignment.

Supported schemes and where their indices come from:

- ``dlib68`` / ``fan68``: the iBUG 300-W 68-point markup (0-based): eye contours 36-41
  (image-left) and 42-47 (image-right), nose tip 30, mouth corners 48 and 54.
- ``mediapipe468`` / ``mediapipe478``: the MediaPipe face-mesh topology: image-left eye
  contour around 33 (outer corner) and 133 (inner corner), image-right eye 362 (inner)
  and 263 (outer), nose tip 4, mouth corners 61 and 291. (The mesh's point 1, often
  called the nose tip, is the bottom of the tip in a frontal view, ~25 px below dlib's
  point 30 on 1350 px FRLL portraits; point 4 agrees with dlib's within ~6 px.) The refined 478-point mesh adds
  the iris centres 468 (image-left) and 473 (image-right), used as eye centres.
- ``tem189``: the WebMorph/Psychomorph FRL 189-point template, indices read off the
  hand-placed ``.tem`` files of the FRLL set: pupils 0 (image-left) and 1 (image-right),
  eye corners 18 (outer) / 22 (inner) and 23 (inner) / 27 (outer), mouth corners 87 and
  93. The template has no point on the nose tip itself: 54 and 60 sit at the upper left
  and right of the tip, where the lines of the nasal bridge end; their midpoint is used
  (on 30 FRLL photos it lies ~4 px above dlib's point 30, 6 px away on average).
"""

from __future__ import annotations

from typing import Mapping, Sequence, Union

import numpy as np

from morphlab.face.base import Face

#: An index into the landmarks, or a tuple of indices whose mean is the point.
PointRef = Union[int, tuple[int, ...]]

_DLIB68 = {
    "left_eye": tuple(range(36, 42)),
    "right_eye": tuple(range(42, 48)),
    "left_eye_outer": 36,
    "left_eye_inner": 39,
    "right_eye_inner": 42,
    "right_eye_outer": 45,
    "nose_tip": 30,
    "mouth_left": 48,
    "mouth_right": 54,
}

# MediaPipe face-mesh eye contours (upper + lower lid rings, the mesh's own grouping).
_MP_LEFT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
_MP_RIGHT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
_MEDIAPIPE468 = {
    "left_eye": _MP_LEFT_EYE,
    "right_eye": _MP_RIGHT_EYE,
    "left_eye_outer": 33,
    "left_eye_inner": 133,
    "right_eye_inner": 362,
    "right_eye_outer": 263,
    "nose_tip": 4,
    "mouth_left": 61,
    "mouth_right": 291,
}
_MEDIAPIPE478 = {**_MEDIAPIPE468, "left_eye": 468, "right_eye": 473}

_TEM189 = {
    "left_eye": 0,
    "right_eye": 1,
    "left_eye_outer": 18,
    "left_eye_inner": 22,
    "right_eye_inner": 23,
    "right_eye_outer": 27,
    "nose_tip": (54, 60),
    "mouth_left": 87,
    "mouth_right": 93,
}

#: Named semantic points of every supported scheme: name -> index or indices to average.
SCHEME_POINTS: Mapping[str, Mapping[str, PointRef]] = {
    "dlib68": _DLIB68,
    "fan68": _DLIB68,
    "mediapipe468": _MEDIAPIPE468,
    "mediapipe478": _MEDIAPIPE478,
    "tem189": _TEM189,
}

#: Number of landmarks each scheme has (checked before indexing).
SCHEME_SIZES: Mapping[str, int] = {
    "dlib68": 68, "fan68": 68, "mediapipe468": 468, "mediapipe478": 478, "tem189": 189,
}

#: Points that several schemes locate at the same anatomical place, used to compare
#: backends with each other and with hand-placed ``.tem`` points.
COMPARABLE_POINTS: tuple[str, ...] = (
    "left_eye_outer", "left_eye_inner", "right_eye_inner", "right_eye_outer",
    "nose_tip", "mouth_left", "mouth_right",
)

FIVE_POINT_NAMES: tuple[str, ...] = ("left_eye", "right_eye", "nose_tip", "mouth_left", "mouth_right")


def _check(face: Face) -> Mapping[str, PointRef]:
    scheme = face.scheme
    if scheme not in SCHEME_POINTS:
        raise ValueError(
            f"landmark scheme {scheme!r} has no known eye/nose/mouth points; supported "
            f"schemes: {', '.join(sorted(SCHEME_POINTS))} (for a sidecar file with another "
            "markup, give the file backend the scheme it follows)"
        )
    lm = np.asarray(face.landmarks)
    if lm.ndim != 2 or lm.shape[1] != 2 or lm.shape[0] != SCHEME_SIZES[scheme]:
        raise ValueError(
            f"scheme {scheme!r} needs {SCHEME_SIZES[scheme]} landmarks of shape (N, 2), "
            f"got an array of shape {lm.shape}"
        )
    return SCHEME_POINTS[scheme]


def named_points(face: Face, names: Sequence[str]) -> np.ndarray:
    """The named semantic points of ``face`` (see :data:`SCHEME_POINTS`).

    Args:
        face: a face whose ``scheme`` is one of :data:`SCHEME_POINTS`.
        names: point names, e.g. ``("nose_tip", "mouth_left")``.

    Returns:
        ``(len(names), 2)`` float64 ``(x, y)`` pixel coordinates.
    """
    table = _check(face)
    lm = np.asarray(face.landmarks, dtype=np.float64)
    out = np.empty((len(names), 2), dtype=np.float64)
    for i, name in enumerate(names):
        try:
            ref = table[name]
        except KeyError:
            raise KeyError(
                f"no point {name!r} in scheme {face.scheme!r}; known: {', '.join(table)}"
            ) from None
        out[i] = lm[list(ref)].mean(axis=0) if isinstance(ref, tuple) else lm[ref]
    return out


def eye_centres(face: Face) -> np.ndarray:
    """Centres of both eyes.

    Returns:
        ``(2, 2)`` float64: ``[image-left eye (x, y), image-right eye (x, y)]`` (pupils
        where the scheme has them, else the mean of the eye contour).
    """
    return named_points(face, ("left_eye", "right_eye"))


def five_points(face: Face) -> np.ndarray:
    """The 5 points of insightface/ArcFace alignment.

    Returns:
        ``(5, 2)`` float64 ``(x, y)``: image-left eye, image-right eye, nose tip, mouth
        left corner, mouth right corner (image left/right).
    """
    return named_points(face, FIVE_POINT_NAMES)


def comparable_points(face: Face) -> np.ndarray:
    """The :data:`COMPARABLE_POINTS` (eye corners, nose tip, mouth corners) of ``face``.

    Returns:
        ``(7, 2)`` float64 ``(x, y)`` in the order of :data:`COMPARABLE_POINTS`.
    """
    return named_points(face, COMPARABLE_POINTS)
