"""The dlib and mediapipe backends on real photos, no-face and several-face images."""

from __future__ import annotations

import numpy as np
import pytest

from morphlab.face import (
    FACE_BACKENDS,
    MultipleFacesError,
    NoFaceError,
    create_backend,
    eye_centres,
    get_face,
)
from morphlab.face.file_backend import read_tem
from morphlab.io import read_image

SIZES = {"dlib68": 68, "mediapipe468": 468, "mediapipe478": 478}


def test_builtin_backends_registered():
    assert {"dlib", "mediapipe", "face-alignment", "file"} <= set(FACE_BACKENDS.names())


#: (folder fixture, photo): a 1350 px FRLL portrait, a 600 px smiling one, the CC0 photos
#: (downscaled; other .tem templates) — and the originals of the shared data folder.
PHOTOS = [
    ("fixtures_dir", "frll_1350/neutral/002_03.jpg"), ("sample_dir", "smiling/013_08.jpg"),
    ("fixtures_dir", "cc0_lisa/lisa1.jpg"), ("fixtures_dir", "cc0_zoom/60cm.jpg"),
] + [
    pytest.param("shared_data", p, marks=pytest.mark.shared_data)
    for p in ("frll/neutral/002_03.jpg", "frll/smiling/013_08.jpg", "cc0_lisa/lisa1.jpg",
              "cc0_zoom/60cm.jpg")
]


@pytest.mark.parametrize("name", ["dlib", "mediapipe"])
@pytest.mark.parametrize("root, photo", PHOTOS)
def test_finds_the_face_on_real_photos(name, root, photo, request, dlib_backend, mp_backend):
    backend = {"dlib": dlib_backend, "mediapipe": mp_backend}[name]
    path = request.getfixturevalue(root) / photo
    image = read_image(path)
    faces = backend.detect(image)
    assert len(faces) == 1
    face = faces[0]
    assert face.scheme == backend.scheme
    assert face.landmarks.shape == (SIZES[face.scheme], 2) and face.landmarks.dtype == np.float64
    h, w = image.shape[:2]
    x0, y0, x1, y1 = face.box
    assert 0 <= x0 < x1 <= w + 1 and 0 <= y0 < y1 <= h + 1
    # the landmarks are on the face: the eyes lie inside the box, left of right
    eyes = eye_centres(face)
    assert (eyes[:, 0] > x0).all() and (eyes[:, 0] < x1).all()
    assert eyes[0, 0] < eyes[1, 0]
    tem = path.with_suffix(".tem")
    # against the hand-placed pupils (points 0 and 1 of the 189-point FRLL template;
    # the CC0 sets use other templates)
    if tem.exists() and len(read_tem(tem)) == 189:
        pupils = read_tem(tem)[:2]
        iod = np.linalg.norm(pupils[1] - pupils[0])
        assert np.linalg.norm(eyes - pupils, axis=1).max() < 0.1 * iod


def test_mediapipe_refined_adds_irises(mp_backend, face_image, face_path):
    refined = create_backend("mediapipe", refine_landmarks=True)
    face = refined.landmarks(face_image)
    assert face.scheme == "mediapipe478" and face.landmarks.shape == (478, 2)
    pupils = read_tem(face_path.with_suffix(".tem"))[:2]
    assert np.linalg.norm(eye_centres(face) - pupils, axis=1).max() < 6.0  # 1350 px image
    assert refined.cache_key() != mp_backend.cache_key()


@pytest.mark.parametrize("name", ["dlib", "mediapipe"])
def test_no_face_names_the_file(name, blank_path, tmp_path):
    with pytest.raises(NoFaceError, match="grey.png"):
        get_face(name, blank_path, cache_dir=tmp_path)
    noise = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    with pytest.raises(NoFaceError, match="noise.png"):
        create_backend(name).landmarks(noise, source=tmp_path / "noise.png")


@pytest.mark.parametrize("name", ["dlib", "mediapipe"])
def test_several_faces_largest_with_warning_or_error(name, two_faces_path, tmp_path):
    backend = create_backend(name)
    image = read_image(two_faces_path)
    faces = backend.detect(image)
    assert len(faces) == 2
    assert faces[0].area > faces[1].area  # largest first
    with pytest.warns(RuntimeWarning, match="2 faces"):
        face = get_face(backend, two_faces_path, cache_dir=tmp_path)
    assert face.box[2] <= 600  # the big face is on the left
    with pytest.raises(MultipleFacesError, match="two_faces.png"):
        get_face(backend, two_faces_path, cache_dir=tmp_path, multiple="error")


def test_dlib_downscaled_detection_matches_full_resolution(dlib_backend, face_image):
    fast = dlib_backend.landmarks(face_image)
    full = create_backend("dlib", max_side=None).landmarks(face_image)
    iod = np.linalg.norm(np.diff(eye_centres(full), axis=0))
    assert np.abs(fast.landmarks - full.landmarks).max() < 0.05 * iod
    assert dlib_backend.cache_key() != create_backend("dlib", max_side=None).cache_key()


@pytest.mark.parametrize("name", ["dlib", "mediapipe"])
def test_bad_image_and_options(name):
    backend = create_backend(name)
    with pytest.raises(ValueError, match="RGB uint8"):
        backend.detect(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="RGB uint8"):
        backend.detect(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(KeyError, match="valid names"):
        create_backend("no-such-backend")


def test_option_validation():
    with pytest.raises(ValueError, match="upsample"):
        create_backend("dlib", upsample=-1)
    with pytest.raises(ValueError, match="max_side"):
        create_backend("dlib", max_side=8)
    with pytest.raises(ValueError, match="max_num_faces"):
        create_backend("mediapipe", max_num_faces=0)
