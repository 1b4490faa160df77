"""5-point similarity alignment, ICAO crops and point transforms."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from morphlab.face import (
    ARCFACE_TEMPLATE_112,
    create_backend,
    estimate_similarity,
    eye_centres,
    five_points,
    icao_crop,
    similarity_align,
    transform_points,
)
from morphlab.face.align import ICAO_EYE_DISTANCE, ICAO_EYE_LINE


def similarity(angle_deg, scale, tx, ty):
    a = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


def test_estimate_similarity_recovers_a_known_transform():
    src = np.random.default_rng(1).uniform(0, 500, (9, 2))
    M = similarity(17.0, 2.5, -40.0, 12.0)
    np.testing.assert_allclose(estimate_similarity(src, transform_points(src, M)), M, atol=1e-9)


def test_estimate_similarity_bad_input():
    with pytest.raises(ValueError, match="coincide"):
        estimate_similarity(np.ones((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="N >= 2"):
        estimate_similarity(np.ones((3, 2)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="finite"):
        estimate_similarity(np.array([[0, 0], [1, np.nan]]), np.ones((2, 2)))


@pytest.mark.parametrize("size", [112, 224])
def test_similarity_align_maps_points_onto_the_template(size, face_image):
    # 5 points that are an exact similarity image of the template
    M_true = similarity(-12.0, 5.3, 420.0, 310.0)
    pts = transform_points(ARCFACE_TEMPLATE_112, M_true)
    crop, M = similarity_align(face_image, pts, size=size)
    assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
    assert np.abs(transform_points(pts, M) - ARCFACE_TEMPLATE_112 * size / 112).max() < 1.0


def test_similarity_align_on_real_landmarks(face_image, dlib_backend):
    pts = five_points(dlib_backend.landmarks(face_image))
    crop, M = similarity_align(face_image, pts)
    residual = np.linalg.norm(transform_points(pts, M) - ARCFACE_TEMPLATE_112, axis=1)
    assert residual.max() < 4.0  # real faces are not an exact similarity of the template
    # the crop is a face: dlib finds one whose eyes are where the template puts them
    big = cv2.resize(crop, (448, 448), interpolation=cv2.INTER_CUBIC)
    again = create_backend("dlib", max_side=None).landmarks(big)
    np.testing.assert_allclose(eye_centres(again) / 4, ARCFACE_TEMPLATE_112[:2], atol=3.0)
    with pytest.raises(ValueError, match="template's shape"):
        similarity_align(face_image, pts[:4])


def test_icao_crop_levels_and_centres_the_eyes(face_image, face_path, dlib_backend):
    from morphlab.face.file_backend import read_tem

    # tilt the photo by 9 degrees, with its hand-placed landmarks
    h, w = face_image.shape[:2]
    R = cv2.getRotationMatrix2D((w / 2, h / 2), 9.0, 1.0)
    tilted = cv2.warpAffine(face_image, R, (w, h), borderMode=cv2.BORDER_REPLICATE)
    pupils = transform_points(read_tem(face_path.with_suffix(".tem"))[:2], R)
    assert abs(pupils[1, 1] - pupils[0, 1]) > 30

    out_w, out_h = 350, 450
    crop, M = icao_crop(tilted, pupils, (out_w, out_h))
    assert crop.shape == (out_h, out_w, 3)
    eyes = transform_points(pupils, M)
    np.testing.assert_allclose(eyes[:, 1], ICAO_EYE_LINE * out_h, atol=1e-6)
    np.testing.assert_allclose(eyes.mean(0)[0], out_w / 2, atol=1e-6)
    np.testing.assert_allclose(eyes[1, 0] - eyes[0, 0], ICAO_EYE_DISTANCE * out_w, atol=1e-6)
    # and independently: a detector on the crop sees level eyes and a centred face
    found = eye_centres(dlib_backend.landmarks(crop))
    dx, dy = found[1] - found[0]
    assert abs(np.degrees(np.arctan2(dy, dx))) < 1.5
    assert abs(found.mean(0)[0] - out_w / 2) < 0.03 * out_w
    # replicate border: no black corners from the rotation
    assert crop[0, 0].min() > 100 and crop[0, -1].min() > 100


def test_icao_crop_bad_input(face_image):
    eyes = np.array([[500.0, 600.0], [800.0, 600.0]])
    with pytest.raises(ValueError, match="image-left then image-right"):
        icao_crop(face_image, eyes[::-1])
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        icao_crop(face_image, eyes[:1])
    with pytest.raises(ValueError, match="fractions"):
        icao_crop(face_image, eyes, eye_distance=1.5)
    with pytest.raises(ValueError, match="border"):
        icao_crop(face_image, eyes, border="wrap")
    with pytest.raises(ValueError, match="RGB uint8"):
        icao_crop(face_image[..., 0], eyes)


def test_transform_points_round_trip():
    pts = np.random.default_rng(2).uniform(0, 100, (20, 2))
    M = similarity(33.0, 0.7, 5.0, -8.0)
    back = transform_points(transform_points(pts, M), cv2.invertAffineTransform(M))
    np.testing.assert_allclose(back, pts, atol=1e-9)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        transform_points(np.ones(3), M)
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        transform_points(pts, np.eye(3))
