"""Benchmarks run end to end on tiny inputs (they are scripts, not tests: this only checks
that they run and write what they promise)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARC2FACE_BENCH = REPO / "benchmarks" / "arc2face_throughput.py"


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_arc2face_report_is_written_after_every_section(tmp_path):
    """A failing section records its error; the JSON on disk holds every finished
    section at each moment (what a run cut short by a time limit returns)."""
    bench = _load(ARC2FACE_BENCH)
    path = tmp_path / "out" / "bench.json"
    report = bench.Report(path, {"device": "test"})
    assert json.loads(path.read_text())["sections"] == {}

    def boom():
        raise MemoryError("CUDA out of memory at batch 64\nmore lines")

    seen = {}

    def second():
        seen["on_disk"] = json.loads(path.read_text())  # while this section runs
        return {"morphs": 4, "batch": 4, "seconds": 2.0, "morphs_per_s": 2.0}

    assert report.section("first", lambda: {"morphs": 1, "batch": 1, "seconds": 1.0,
                                             "morphs_per_s": 1.0}) is not None
    assert report.section("oom", boom) is None
    assert report.section("second", second)["morphs_per_s"] == 2.0
    assert set(seen["on_disk"]["sections"]) == {"first", "oom"}
    assert seen["on_disk"]["sections"]["oom"]["error"] == "MemoryError: CUDA out of memory at batch 64"
    final = json.loads(path.read_text())
    assert final["done"] == ["first", "oom", "second"]
    assert not list(path.parent.glob("*.tmp"))


def test_arc2face_throughput_tiny_cpu(tmp_path):
    for mod in ("torch", "diffusers", "transformers", "onnx", "onnxruntime"):
        pytest.importorskip(mod, reason=f"the arc2face benchmark needs {mod}")
    out = tmp_path / "a2f.json"
    # one thread: the tiny modules gain nothing from more, and a busy machine slows
    # OpenMP's spinning threads down badly
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, str(ARC2FACE_BENCH), "--tiny", "--device", "cpu",
                          "--json", str(out)], capture_output=True, text=True, env=env,
                         cwd=str(tmp_path), timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    data = json.loads(out.read_text())
    secs = data["sections"]
    assert data["done"] == ["build", "reference", "batch-1", "batch-2", data["done"][-1]]
    assert data["done"][-1].startswith("cudnn-batch-")  # compile is skipped on a CPU
    assert data["env"]["preset"] == "tiny" and data["env"]["sections"] == ["reference", "batch", "cudnn"]
    for name in data["done"][1:]:
        rec = secs[name]
        assert "error" not in rec, rec
        assert rec["morphs"] == rec["batch"] * rec["calls"] and rec["morphs_per_s"] > 0
        assert rec["peak_mem_gib"] is None  # no CUDA
    assert secs["reference"]["batch"] == 1 and secs["batch-2"]["batch"] == 2
    assert secs["cudnn-" + data["done"][-1].split("-", 1)[1]]["cudnn_benchmark"] is True
    summary = data["summary"]
    assert summary["best"] in secs and summary["speedup_over_reference"] > 0
    assert "target_met" not in summary  # only judged for SD1.5 sizes on CUDA
    assert "morphs/s" in res.stdout and "best: best=" in res.stdout
