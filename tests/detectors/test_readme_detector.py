"""The README's "Plugging in your own detector" example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_detector_example_runs(tmp_path, monkeypatch, capsys):
    pytest.importorskip("sklearn")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (code,) = [b for b in blocks if "SingleImageDetector" in b]
    monkeypatch.chdir(tmp_path)
    ns: dict = {"__name__": "readme_example"}
    exec(compile(code, str(README), "exec"), ns)
    aucs = np.array(re.findall(r"[\d.]+", capsys.readouterr().out.split("]")[0]), dtype=float)
    assert aucs.shape == (4,) and (aucs > 0.8).all()  # the printed cross-validation AUCs
    from morphlab.detectors.base import read_model_info

    info = read_model_info(tmp_path / "smoothness-model")
    assert info["detector"] == "smoothness" and "bona_fide_energy" in info["state"]
    back = ns["Smoothness"].load(tmp_path / "smoothness-model")
    X = ns["X"]
    np.testing.assert_array_equal(back.decision_function(X), ns["search"].best_estimator_.decision_function(X))
