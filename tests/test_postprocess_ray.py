"""``postprocess`` on Ray (issue 14 item 4): the same bytes as a local run, and resume.

Ray actors compute (read, process, encode); the driver alone writes, so a Ray run's
folder — images, manifest, run.json, contact sheet — is byte for byte a local run's with
the same seed, and a run interrupted on either continues on the other to the same bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from test_postprocess import _Blend

from morphlab.generators.runner import generate_attack_set
from morphlab.io import write_image
from morphlab.postprocess import postprocess_set, sets

try:
    import ray
except ImportError:  # under CI the Ray tests must run: a missing Ray is a failure there
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise ImportError("CI=true but Ray is not installed: pip install -e '.[ray]'") from None
    pytest.skip("ray is not installed (pip install 'morphlab[ray]')", allow_module_level=True)

from morphlab.ray_executor import RayExecutor  # noqa: E402

#: random steps (print-scan noise and colour shift) and the JPEG that is the file
OPS = ["print-scan:dpi=150,width_mm=8", "jpeg:quality=80"]
SEED = 3


@pytest.fixture(scope="module")
def ray_local():
    """A private 2-CPU Ray instance for this module."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def attack_set(tmp_path_factory) -> Path:
    """Six 40 px morphs; the sixth edited after generation (a failed line, on every run)."""
    d = tmp_path_factory.mktemp("ray-pp")
    rng = np.random.default_rng(0)
    for i in range(7):
        write_image(d / "photos" / f"{i:03d}.png", rng.integers(0, 256, (40, 40, 3), np.uint8))
    rows = [f"{k + 1:04d},{k:03d},{k:03d}.png,{k + 1:03d},{k + 1:03d}.png" for k in range(6)]
    (d / "pairs.csv").write_text("pair_id,subject_a,image_a,subject_b,image_b\n"
                                 + "\n".join(rows) + "\n")
    s = generate_attack_set(d / "pairs.csv", _Blend, {}, d / "set", dataset_dir=d / "photos",
                            progress=False)
    assert s.generated == 6
    edited = sorted((d / "set").glob("0006_*.png"))[0]
    edited.write_bytes(edited.read_bytes() + b"\0")
    return d / "set"


def _snapshot(out: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(out.iterdir()) if not f.name.startswith(".")}


def _run(src: Path, out: Path, **kw):
    return postprocess_set(src, out, OPS, seed=SEED, progress=False, **kw)


@pytest.fixture(scope="module")
def reference(attack_set: Path, tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("ref") / "pp"
    s = _run(attack_set, out)
    assert (s.items, s.processed, s.failed) == (6, 5, 1)
    snap = _snapshot(out)
    assert "contact.html" in snap and sum(n.endswith(".jpg") for n in snap) == 5
    return snap


@pytest.mark.parametrize("workers", [1, 2])
def test_ray_run_is_byte_identical_to_a_local_run(ray_local, attack_set, reference, tmp_path,
                                                  workers):
    s = _run(attack_set, tmp_path / "pp", executor=RayExecutor(workers=workers))
    assert (s.items, s.processed, s.failed) == (6, 5, 1)
    assert "does not match the sha256" in s.failures[0]["error"]
    got = _snapshot(tmp_path / "pp")
    assert sorted(got) == sorted(reference)
    for name in reference:
        assert got[name] == reference[name], name


class _Killed(KeyboardInterrupt):
    pass


def _interrupt_after(monkeypatch, n: int) -> None:
    """The driver is interrupted right after writing ``n`` images (as a kill would)."""
    real, seen = sets.write_result, []

    def write_then_die(res, dst):
        if len(seen) >= n:
            raise _Killed()
        seen.append(1)
        return real(res, dst)

    monkeypatch.setattr(sets, "write_result", write_then_die)


@pytest.mark.parametrize("first,then", [("ray", "local"), ("ray", "ray"), ("local", "ray")])
def test_an_interrupted_run_resumes_to_the_same_bytes(ray_local, attack_set, reference, tmp_path,
                                                      monkeypatch, first, then):
    out = tmp_path / "pp"
    _interrupt_after(monkeypatch, 3)
    with pytest.raises(_Killed):
        _run(attack_set, out, executor=RayExecutor(workers=2) if first == "ray" else None)
    monkeypatch.undo()
    partial = _snapshot(out)
    assert partial["manifest.jsonl"].count(b"\n") == 3
    assert sum(n.endswith(".jpg") for n in partial) == 3
    s = _run(attack_set, out, resume=True,
             executor=RayExecutor(workers=2) if then == "ray" else None)
    assert (s.skipped, s.processed, s.failed) == (3, 2, 1)
    assert _snapshot(out) == reference


def test_cli_postprocess_on_ray(ray_local, attack_set, reference, tmp_path):
    from click.testing import CliRunner

    from morphlab.cli import main

    args = ["postprocess", str(attack_set), "-o", str(tmp_path / "pp"), "--seed", str(SEED),
            *(w for op in OPS for w in ("--op", op)), "--no-progress"]
    res = CliRunner().invoke(main, [*args, "--executor", "ray", "-j", "2"])
    assert res.exit_code == 0, res.output
    assert "6 images: 0 done before, 5 processed, 1 failed" in res.output
    assert _snapshot(tmp_path / "pp") == reference
    res = CliRunner().invoke(main, [*args, "--ray-address", "auto"])
    assert res.exit_code == 1 and "need --executor ray" in res.output
