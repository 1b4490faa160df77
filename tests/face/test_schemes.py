"""Eye centres and the 5 ArcFace points for every scheme."""

from __future__ import annotations

import numpy as np
import pytest

from morphlab.face import Face, comparable_points, create_backend, eye_centres, five_points
from morphlab.face.schemes import COMPARABLE_POINTS, SCHEME_POINTS


@pytest.fixture(scope="module")
def faces(face_image, face_path, dlib_backend, mp_backend):
    dlib_face = dlib_backend.landmarks(face_image)
    return {
        "dlib68": dlib_face,
        "fan68": Face(dlib_face.box, dlib_face.landmarks, "fan68"),
        "mediapipe468": mp_backend.landmarks(face_image),
        "mediapipe478": create_backend("mediapipe", refine_landmarks=True).landmarks(face_image),
        "tem189": create_backend("file").landmarks(face_image, source=face_path),
    }


def test_every_scheme_is_covered(faces):
    assert set(faces) == set(SCHEME_POINTS)


@pytest.mark.parametrize("scheme", sorted(SCHEME_POINTS))
def test_five_points_are_anatomically_ordered(scheme, faces):
    face = faces[scheme]
    p = five_points(face)
    assert p.shape == (5, 2) and p.dtype == np.float64
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = p
    assert lx < rx and mlx < mrx                   # image-left before image-right
    assert lx < nx < rx                            # nose between the eyes...
    assert max(ly, ry) < ny < min(mly, mry)        # ...and between eyes and mouth
    np.testing.assert_array_equal(eye_centres(face), p[:2])
    assert abs(ly - ry) < 0.1 * (rx - lx)          # a frontal, upright portrait


@pytest.mark.parametrize("scheme", sorted(SCHEME_POINTS))
def test_schemes_agree_with_each_other(scheme, faces):
    """The same anatomical points from different schemes lie close together."""
    ref = comparable_points(faces["tem189"])
    iod = np.linalg.norm(ref[3] - ref[0])
    err = np.linalg.norm(comparable_points(faces[scheme]) - ref, axis=1)
    assert err.shape == (len(COMPARABLE_POINTS),)
    assert err.max() < 0.08 * iod, dict(zip(COMPARABLE_POINTS, err.round(1)))
    eyes_err = np.linalg.norm(eye_centres(faces[scheme]) - eye_centres(faces["tem189"]), axis=1)
    assert eyes_err.max() < 0.06 * iod


def test_fan68_uses_the_dlib68_indices(faces):
    np.testing.assert_array_equal(five_points(faces["fan68"]), five_points(faces["dlib68"]))
    np.testing.assert_array_equal(eye_centres(faces["dlib68"]),
                                  [faces["dlib68"].landmarks[36:42].mean(0), faces["dlib68"].landmarks[42:48].mean(0)])


def test_unknown_scheme_and_wrong_count():
    with pytest.raises(ValueError, match="supported schemes: dlib68"):
        five_points(Face(np.zeros(4), np.zeros((12, 2)), "file12"))
    with pytest.raises(ValueError, match="needs 68 landmarks"):
        eye_centres(Face(np.zeros(4), np.zeros((67, 2)), "dlib68"))
