"""Fixtures for the face tests: real FRLL/CC0 photos (committed fixtures and the embedded
sample), loaded backends, synthetic scenes."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from morphlab.face import create_backend
from morphlab.io import read_image, write_image


@pytest.fixture(scope="session")
def frll_neutral(frll_dir: Path) -> Path:
    """The shared set's 82 neutral portraits (1350x1350; needs MORPHLAB_TEST_DATA)."""
    return frll_dir / "neutral"


@pytest.fixture(scope="session")
def face_path(fixtures_dir: Path) -> Path:
    """One real 1350x1350 FRLL portrait with a hand-placed .tem file (committed fixture)."""
    return fixtures_dir / "frll_1350" / "neutral" / "002_03.jpg"


@pytest.fixture(scope="session")
def face_image(face_path: Path) -> np.ndarray:
    return read_image(face_path)


@pytest.fixture(scope="session")
def dlib_backend():
    return create_backend("dlib")


@pytest.fixture(scope="session")
def mp_backend():
    return create_backend("mediapipe")


@pytest.fixture(scope="session")
def blank_path(tmp_path_factory) -> Path:
    """A flat grey image: no face."""
    path = tmp_path_factory.mktemp("blank") / "grey.png"
    write_image(path, np.full((480, 640, 3), 128, np.uint8))
    return path


@pytest.fixture(scope="session")
def two_faces_path(tmp_path_factory, face_path: Path, sample_dir: Path) -> Path:
    """Two real faces side by side on a grey canvas; the left one is larger."""
    big = cv2.resize(read_image(face_path), (560, 560), interpolation=cv2.INTER_AREA)
    small = cv2.resize(read_image(sample_dir / "neutral" / "004_03.jpg"), (380, 380),
                       interpolation=cv2.INTER_AREA)
    canvas = np.full((600, 1000, 3), 200, np.uint8)
    canvas[20:580, 0:560] = big
    canvas[110:490, 600:980] = small
    path = tmp_path_factory.mktemp("two") / "two_faces.png"
    write_image(path, canvas)
    return path


def detect_quietly(backend, image, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return backend.landmarks(image, **kw)
