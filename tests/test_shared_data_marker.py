"""The test-data gate of tests/conftest.py: tests on the full-size photos run only when
MORPHLAB_TEST_DATA is set, and a variable naming a missing folder fails them (CI)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

TESTS = '''
import pytest

def test_uses_the_fixture(frll_dir):
    assert (frll_dir / "neutral").is_dir()

@pytest.mark.shared_data
def test_marked():
    pass

def test_plain():
    pass
'''


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A copy of the suite's conftest with three tiny tests (one per kind)."""
    (tmp_path / "tests").mkdir()
    shutil.copyfile(HERE / "conftest.py", tmp_path / "tests" / "conftest.py")
    (tmp_path / "tests" / "test_gate.py").write_text(TESTS)
    (tmp_path / "setup.cfg").write_text(
        "[tool:pytest]\nmarkers =\n    shared_data: full-size photos\n")
    return tmp_path


def _pytest(project: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("MORPHLAB_TEST_DATA", "CI")}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", "--strict-markers",
         "tests"],
        cwd=project, env=environ, capture_output=True, text=True, timeout=300, check=False)


def test_without_the_variable_they_are_skipped_naming_it(project: Path):
    res = _pytest(project)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 passed, 2 skipped" in res.stdout
    assert "set MORPHLAB_TEST_DATA to the shared data folder" in res.stdout


def test_under_ci_a_missing_folder_is_a_failure(project: Path):
    res = _pytest(project, MORPHLAB_TEST_DATA=str(project / "nowhere"), CI="true")
    assert res.returncode == 1, res.stdout + res.stderr
    # the fixture user fails (a setup error), naming the variable and the folder; nothing
    # is skipped
    assert "1 error" in res.stdout and "skipped" not in res.stdout
    assert f"MORPHLAB_TEST_DATA={project / 'nowhere'}: no frll/neutral folder" in res.stdout
    assert "2 passed" in res.stdout  # the marked test without the fixture, the plain one


def test_a_relative_value_is_resolved_from_the_repository_root(project: Path):
    (project / "data" / "frll" / "neutral").mkdir(parents=True)
    res = _pytest(project, MORPHLAB_TEST_DATA="data", CI="true")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "3 passed" in res.stdout
