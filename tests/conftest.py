"""Shared fixtures: the embedded sample, committed fixtures, the full-size photos, caches.

The default suite needs nothing outside the repository: the embedded sample
(``morphlab/sample/frll``) and the small fixtures in ``tests/fixtures`` (see its
ATTRIBUTION.md). Tests that need the full-size photos of the shared data folder (FRLL at
1350 px, all 82 identities) carry ``@pytest.mark.shared_data`` (or use the ``shared_data``
/ ``frll_dir`` fixtures, which marks them too) and run only when ``MORPHLAB_TEST_DATA``
names that folder; without the variable they are skipped with that reason, and a
variable naming a missing folder fails them (CI sets it: a missing folder is a failure).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Small committed images the sample lacks (downscaled, attributed: ATTRIBUTION.md there).
FIXTURES = REPO / "tests" / "fixtures"
#: Environment variable naming the shared data folder (FRLL, CC0 sets) at full size.
DATA_ENV = "MORPHLAB_TEST_DATA"
SKIP_REASON = (f"needs the full-size photos: set {DATA_ENV} to the shared data folder "
               "(e.g. ../shared/data)")


def shared_data_setting() -> Optional[Path]:
    """The folder ``MORPHLAB_TEST_DATA`` names (relative: to the repository root), or None."""
    value = os.environ.get(DATA_ENV, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else REPO / path


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    """Mark every test using the shared data; skip them all unless MORPHLAB_TEST_DATA is set."""
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()) and not item.get_closest_marker(
                "shared_data"):
            item.add_marker(pytest.mark.shared_data)
    if shared_data_setting() is None:
        skip = pytest.mark.skip(reason=SKIP_REASON)
        for item in items:
            if item.get_closest_marker("shared_data"):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder (``MORPHLAB_TEST_DATA``); a missing folder is a failure."""
    path = shared_data_setting()
    if path is None:  # the collection hook skips these tests already
        pytest.skip(SKIP_REASON)
    if not (path / "frll" / "neutral").is_dir():
        pytest.fail(f"{DATA_ENV}={os.environ[DATA_ENV]}: no frll/neutral folder at {path}; "
                    "point it at the shared data folder (../shared/data) or unset it to skip "
                    "the tests on the full-size photos")
    return path


@pytest.fixture(scope="session")
def frll_dir(shared_data: Path) -> Path:
    """The full FRLL set (82 identities, 1350x1350) of the shared data folder."""
    return shared_data / "frll"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """``tests/fixtures``: the committed test images the sample lacks."""
    if not (FIXTURES / "ATTRIBUTION.md").is_file():
        pytest.fail(f"{FIXTURES}: the committed test fixtures are missing")
    return FIXTURES


@pytest.fixture(scope="session")
def frll_photo(sample_dir: Path, fixtures_dir: Path):
    """``frll_photo(face_id, capture="03") -> Path`` of a 600x600 FRLL photo with its .tem
    sidecar (neutral): the embedded sample, or ``tests/fixtures/frll_600`` (025)."""

    def get(face_id: str, capture: str = "03") -> Path:
        sub = "neutral" if capture == "03" else "smiling"
        for root in (sample_dir, fixtures_dir / "frll_600"):
            path = root / sub / f"{face_id}_{capture}.jpg"
            if path.is_file():
                return path
        raise FileNotFoundError(f"no 600 px FRLL photo {face_id}_{capture} in the sample or "
                                f"{fixtures_dir / 'frll_600'}")

    return get


@pytest.fixture(scope="session", params=["sample", pytest.param("shared", marks=pytest.mark.shared_data)])
def frll_set(request: pytest.FixtureRequest, sample_dir: Path) -> Path:
    """An FRLL folder in the shared layout (``neutral/``, ``smiling/``, ``london_info.csv``):
    the embedded sample (12 identities) and, with ``MORPHLAB_TEST_DATA``, the full set (82)."""
    if request.param == "sample":
        return sample_dir
    return request.getfixturevalue("frll_dir")


@pytest.fixture(scope="session")
def frll_set_subjects(frll_set: Path, sample_dir: Path) -> int:
    """How many identities :func:`frll_set` holds: 12 (sample) or 82 (shared set)."""
    return 12 if frll_set == sample_dir else 82


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


@pytest.fixture(autouse=True)
def _fresh_deprecation_warnings():
    """Each old spelling warns once per process: every test starts as a fresh process
    would, so a test asserting the warning does not depend on which ran before it."""
    from morphlab.cli import _conventions
    from morphlab.postprocess import ops

    _conventions._WARNED.clear()
    ops._WARNED.clear()
    yield
