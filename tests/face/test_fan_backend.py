"""The face-alignment (FAN) backend: clear errors without the package or local weights."""

from __future__ import annotations

import importlib.util
import os
from types import SimpleNamespace

import numpy as np
import pytest

from morphlab.face import FACE_BACKENDS, create_backend
from morphlab.face import fan_backend


def _pretend_installed(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        fan_backend.importlib.util, "find_spec",
        lambda name, *a: SimpleNamespace(name=name) if name in ("face_alignment", "torch") else real(name, *a),
    )


def test_registered():
    assert FACE_BACKENDS.get("face-alignment") is fan_backend.FanBackend


def test_missing_package_names_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(fan_backend.importlib.util, "find_spec",
                        lambda name, *a: None if name == "face_alignment" else real(name, *a))
    with pytest.raises(ImportError, match="needs face-alignment") as info:
        create_backend("face-alignment", weights="/x.zip")
    assert "pip install face-alignment" in str(info.value)
    assert "2DFAN4" in str(info.value)  # and says the weights must be local


def test_missing_weights_says_why_and_which_files(monkeypatch):
    _pretend_installed(monkeypatch)
    monkeypatch.delenv(fan_backend.WEIGHTS_ENV, raising=False)
    with pytest.raises(FileNotFoundError) as info:
        create_backend("face-alignment")
    msg = str(info.value)
    for needle in ("downloads", "offline", "2DFAN4-cd938726ad.zip", fan_backend.FAN_WEIGHTS_URL,
                   "weights=", "MORPHLAB_FAN_WEIGHTS"):
        assert needle in msg, needle


def test_weights_path_that_does_not_exist(monkeypatch, tmp_path):
    _pretend_installed(monkeypatch)
    missing = tmp_path / "2DFAN4-cd938726ad.zip"
    with pytest.raises(FileNotFoundError, match="2DFAN4-cd938726ad.zip: FAN weights file not found"):
        create_backend("face-alignment", weights=str(missing))
    monkeypatch.setenv(fan_backend.WEIGHTS_ENV, str(missing))
    with pytest.raises(FileNotFoundError, match="not found"):
        create_backend("face-alignment")


def test_weights_from_env_are_accepted(monkeypatch, tmp_path):
    _pretend_installed(monkeypatch)
    weights = tmp_path / "fan.zip"
    weights.write_bytes(b"stand-in")
    monkeypatch.setenv(fan_backend.WEIGHTS_ENV, str(weights))
    backend = create_backend("face-alignment")
    assert backend.weights == str(weights.resolve()) and backend.scheme == "fan68"
    assert backend.cache_key() != create_backend("face-alignment", flip_input=True).cache_key()


@pytest.mark.skipif(
    importlib.util.find_spec("face_alignment") is None or not os.environ.get("MORPHLAB_FAN_WEIGHTS"),
    reason="face-alignment not installed or $MORPHLAB_FAN_WEIGHTS not set (FAN needs local weights)",
)
def test_real_fan_on_a_real_photo(face_image, face_path):
    from morphlab.face import comparable_points

    face = create_backend("face-alignment").landmarks(face_image)
    ref = comparable_points(create_backend("file").landmarks(face_image, source=face_path))
    assert face.landmarks.shape == (68, 2)
    assert np.linalg.norm(comparable_points(face) - ref, axis=1).mean() < 10.0
