"""Shared fixtures: locations of the real test photos and an isolated cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Real photos (FRLL, CC0 sets). Missing test data is a failure, not a skip.
SHARED_DATA = Path(os.environ.get("MORPHLAB_TEST_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "frll" / "neutral").is_dir():
        pytest.fail(
            f"test data not found at {SHARED_DATA}: put the shared data folder beside the "
            "repository (../shared/data) or set MORPHLAB_TEST_DATA"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def frll_dir(shared_data: Path) -> Path:
    return shared_data / "frll"


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    from morphlab.sample import sample_dir as _sample_dir

    return _sample_dir()


@pytest.fixture(scope="session")
def sample_faces(sample_dir: Path) -> list:
    """``[(id, (neutral image, Face), (smiling image, Face))]`` of 6 embedded-sample
    subjects (4 women, 2 men), dlib landmarks."""
    from morphlab.face.cache import get_face
    from morphlab.io import read_image

    out = []
    for i in ("002", "003", "004", "005", "006", "007"):
        pair = []
        for p in (sample_dir / "neutral" / f"{i}_03.jpg", sample_dir / "smiling" / f"{i}_08.jpg"):
            img = read_image(p)
            pair.append((img, get_face("dlib", p, img)))
        out.append((i, *pair))
    return out


@pytest.fixture(scope="session")
def installed_model():
    """``installed_model(name) -> Path`` of an installed registry model (facenet, …).

    Missing: a failure under CI (``CI=true``; ``make test`` installs them first), else a
    skip naming ``morphlab models install NAME``.
    """
    from morphlab.models import install_command, installed_path

    def get(name: str) -> Path:
        path = installed_path(name)
        if path is None:
            msg = f"model {name} not installed: run `{install_command(name)}`"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(msg)
            pytest.skip(msg)
        return path

    return get


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """Keep the landmark/embedding caches of the test run out of ~/.cache."""
    from morphlab.models import MODELS_ENV, models_dir

    old = os.environ.get("MORPHLAB_CACHE")
    old_models = os.environ.get(MODELS_ENV)
    os.environ[MODELS_ENV] = str(models_dir())  # the installed FR models stay visible
    os.environ["MORPHLAB_CACHE"] = str(tmp_path_factory.mktemp("morphlab-cache"))
    yield
    if old_models is None:
        os.environ.pop(MODELS_ENV, None)
    else:
        os.environ[MODELS_ENV] = old_models
    if old is None:
        os.environ.pop("MORPHLAB_CACHE", None)
    else:
        os.environ["MORPHLAB_CACHE"] = old
