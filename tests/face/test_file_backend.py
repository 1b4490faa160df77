"""The file backend: .tem, .npy and .json sidecars, and every malformed case."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from morphlab.face import create_backend, five_points, get_face
from morphlab.face.file_backend import SidecarError, read_tem
from morphlab.io import read_image


@pytest.fixture()
def image_copy(tmp_path, face_path):
    """A copy of a real portrait in an empty folder (no sidecar yet)."""
    dst = tmp_path / "face.jpg"
    shutil.copyfile(face_path, dst)
    return dst


def test_reads_real_tem(face_path, face_image):
    face = create_backend("file").landmarks(face_image, source=face_path)
    assert face.scheme == "tem189"
    assert face.landmarks.shape == (189, 2)
    lines = face_path.with_suffix(".tem").read_text().splitlines()
    assert int(lines[0]) == 189
    assert face.landmarks[0].tolist() == [float(v) for v in lines[1].split()]
    assert face.landmarks[188].tolist() == [float(v) for v in lines[189].split()]
    np.testing.assert_array_equal(face.box, [*face.landmarks.min(0), *face.landmarks.max(0)])


def test_other_tem_templates_get_a_generic_scheme(fixtures_dir):
    path = fixtures_dir / "cc0_lisa" / "lisa1.jpg"
    face = create_backend("file").landmarks(read_image(path), source=path)
    assert face.scheme == f"file{len(read_tem(path.with_suffix('.tem')))}"
    with pytest.raises(ValueError, match="no known eye"):
        five_points(face)


def test_npy_and_json_sidecars(image_copy, face_path, face_image):
    pts = read_tem(face_path.with_suffix(".tem"))
    backend = create_backend("file")
    np.save(image_copy.with_suffix(".npy"), pts)
    face = backend.landmarks(face_image, source=image_copy)
    assert face.scheme == "file189"  # only .tem files are known to follow the template
    np.testing.assert_array_equal(face.landmarks, pts)

    image_copy.with_suffix(".npy").unlink()
    image_copy.with_suffix(".json").write_text(json.dumps(pts.tolist()))
    np.testing.assert_array_equal(backend.landmarks(face_image, source=image_copy).landmarks, pts)

    image_copy.with_suffix(".json").write_text(json.dumps({"landmarks": pts.tolist(), "scheme": "tem189"}))
    face = backend.landmarks(face_image, source=image_copy)
    assert face.scheme == "tem189"
    assert five_points(face).shape == (5, 2)

    np.save(image_copy.with_suffix(".npy"), pts[:68])  # .npy wins over .json in auto mode...
    assert len(backend.landmarks(face_image, source=image_copy).landmarks) == 68
    face = create_backend("file", suffix="json").landmarks(face_image, source=image_copy)  # ...unless asked
    assert len(face.landmarks) == 189
    face = create_backend("file", scheme="dlib68", suffix=".npy").landmarks(face_image, source=image_copy)
    assert face.scheme == "dlib68"


def test_declared_scheme_must_match_the_count(image_copy, face_image):
    np.save(image_copy.with_suffix(".npy"), np.ones((10, 2)))
    with pytest.raises(SidecarError, match="has 68 points, the file has 10"):
        create_backend("file", scheme="dlib68").landmarks(face_image, source=image_copy)


BAD_TEM = {
    "": "empty",
    "abc\n1\t2\n": "point count",
    "0\n": "must be positive",
    "3\n1\t2\n3\t4\n": "only 2 lines",
    "2\n1\t2\n3\tx\n": "line 3",
    "2\n1\t2\n3 4 5\n": "line 3",
    "2\n1\tnan\n3\t4\n": "NaN",
}


@pytest.mark.parametrize("text", BAD_TEM, ids=range(len(BAD_TEM)))
def test_malformed_tem(text, image_copy, face_image):
    image_copy.with_suffix(".tem").write_text(text)
    with pytest.raises(SidecarError, match="face.tem") as info:
        create_backend("file").landmarks(face_image, source=image_copy)
    assert BAD_TEM[text] in str(info.value)


def test_malformed_npy_and_json(image_copy, face_image):
    backend = create_backend("file")
    npy, js = image_copy.with_suffix(".npy"), image_copy.with_suffix(".json")
    cases = [
        (npy, lambda: np.save(npy, np.ones((5, 3))), "shape"),
        (npy, lambda: np.save(npy, np.array(["a", "b"])), "numeric"),
        (npy, lambda: np.save(npy, np.array([{"x": 1}], dtype=object), allow_pickle=True), "readable"),
        (npy, lambda: npy.write_bytes(b"not numpy"), "readable"),
        (js, lambda: js.write_text("{"), "valid JSON"),
        (js, lambda: js.write_text('{"points": []}'), "'landmarks'"),
        (js, lambda: js.write_text('{"landmarks": [[1, 2], [3]]}'), "pairs"),
        (js, lambda: js.write_text('[]'), "shape"),
        (js, lambda: js.write_text('{"landmarks": [[1, 2]], "scheme": 5}'), "scheme"),
    ]
    for path, make, message in cases:
        for p in (npy, js):
            p.unlink(missing_ok=True)
        make()
        with pytest.raises(SidecarError, match=path.name) as info:
            backend.landmarks(face_image, source=image_copy)
        assert message in str(info.value), (path, message, str(info.value))


def test_landmarks_for_another_resolution(image_copy, face_path, face_image):
    np.save(image_copy.with_suffix(".npy"), read_tem(face_path.with_suffix(".tem")) * 3)
    with pytest.raises(SidecarError, match="another image or resolution"):
        create_backend("file").landmarks(face_image, source=image_copy)


def test_missing_sidecar_and_missing_source(image_copy, face_image):
    with pytest.raises(SidecarError, match=r"face.jpg: no landmark file.*face.tem"):
        create_backend("file").landmarks(face_image, source=image_copy)
    with pytest.raises(ValueError, match="needs the image's path"):
        create_backend("file").landmarks(face_image)
    with pytest.raises(ValueError, match="suffix"):
        create_backend("file", suffix=".txt")


def test_file_backend_is_not_cached_by_content(image_copy, face_path, tmp_path):
    """The sidecar can change while the pixels do not: results must follow the sidecar."""
    pts = read_tem(face_path.with_suffix(".tem"))
    np.save(image_copy.with_suffix(".npy"), pts)
    first = get_face("file", image_copy, cache_dir=tmp_path / "cache")
    np.save(image_copy.with_suffix(".npy"), pts + 1.0)
    second = get_face("file", image_copy, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(second.landmarks, first.landmarks + 1.0)
    assert not (tmp_path / "cache").exists()
    assert create_backend("file").cache_key() != create_backend("dlib").cache_key()
