"""End to end: pip-install the example plug-in package and find it through its entry point."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "morphlab-example-detector"

CHECK = textwrap.dedent("""
    import json
    from morphlab.detectors.base import DETECTORS
    from morphlab.detectors.testing import check_detector
    entry = {e.name: e for e in DETECTORS.entries()}["example-sharpness"]
    result = check_detector(entry.obj)
    print(json.dumps({"origin": entry.origin, "module": entry.obj.__module__, **result}))
""")


def _pip_install(source: Path, target: Path) -> None:
    """Install the example into ``target`` — offline with this environment's setuptools
    when it has one, else with pip's isolated build environment."""
    base = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
            "--target", str(target)]
    attempts = []
    if importlib.util.find_spec("setuptools") is not None:
        attempts.append(base + ["--no-build-isolation", "--no-index", str(source)])
    attempts.append(base + [str(source)])
    errors = []
    for cmd in attempts:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if r.returncode == 0:
            return
        errors.append(f"$ {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    raise AssertionError("could not pip-install the example plug-in:\n" + "\n".join(errors))


def test_example_plugin_is_discovered_and_conforms(tmp_path):
    source, target = tmp_path / "src", tmp_path / "site"
    # build from a copy: setuptools leaves build/ and *.egg-info/ next to the sources
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    _pip_install(source, target)
    assert list(target.glob("morphlab_example_detector-0.1.0.dist-info/entry_points.txt"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(target)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
    r = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, env=env,
                       timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout.strip().splitlines()[-1]
    assert '"origin": "morphlab-example-detector 0.1.0"' in out
    assert '"module": "morphlab_example_detector"' in out
    assert '"cv_auc": ' in out  # the kit ran scikit-learn's cross_val_score on it
    # and `morphlab list` shows where it came from
    r = subprocess.run([sys.executable, "-c", "from morphlab.cli import main; main()", "list"],
                       capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if "example-sharpness" in ln)
    assert "morphlab-example-detector 0.1.0" in line
