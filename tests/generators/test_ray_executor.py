"""``generate`` on Ray (morphlab.ray_executor): the same bytes as a local run, and resume."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from runner_testgens import (
    HERE,
    BatchAverageGen,
    CrashGen,
    snapshot,
)
from runner_testgens import run_set as run

from morphlab.datasets.folder import load_folder
from morphlab.datasets.pairs import make_pairs, write_pairs
from morphlab.generators.runner import generate_attack_set

try:
    import ray
except ImportError:  # under CI the Ray tests must run: a missing Ray is a failure there
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise ImportError("CI=true but Ray is not installed: pip install -e '.[ray]'") from None
    pytest.skip("ray is not installed (pip install 'morphlab[ray]')", allow_module_level=True)

from morphlab import ray_executor  # noqa: E402
from morphlab.ray_executor import RayExecutor, make_executor  # noqa: E402

VARIANTS = {"variants": ["plain", "inverted"]}


@pytest.fixture(scope="module")
def ray_local():
    """A private 2-CPU Ray instance; workers import the test generators from this folder."""
    path = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False, runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield
    ray.shutdown()



@pytest.fixture(scope="module")
def reference(pairs_csv: Path, tmp_path_factory) -> dict[str, bytes]:
    """A local run (one process) with two variants."""
    out = tmp_path_factory.mktemp("ref") / "set"
    s = run(pairs_csv, out, VARIANTS, seed=7)
    assert (s.pairs, s.generated, s.failed, s.morphs) == (6, 6, 0, 12)
    return snapshot(out)


@pytest.mark.parametrize("workers", [1, 2])
def test_ray_run_is_byte_identical_to_a_local_run(ray_local, pairs_csv, reference, tmp_path,
                                                  workers):
    out = tmp_path / "set"
    s = run(pairs_csv, out, VARIANTS, seed=7, executor=RayExecutor(workers=workers))
    assert (s.pairs, s.generated, s.failed, s.morphs) == (6, 6, 0, 12)
    got = snapshot(out)
    assert sorted(got) == sorted(reference)
    for name in reference:
        assert got[name] == reference[name], name


def test_batches_and_failures_on_ray(ray_local, pairs_csv, tmp_path):
    """Batched generators get their batches on Ray too; a failing pair is recorded."""
    fail = {"fail_subjects": ["002"]}
    local = run(pairs_csv, tmp_path / "local", fail, gen=BatchAverageGen, seed=1)
    on_ray = run(pairs_csv, tmp_path / "ray", fail, gen=BatchAverageGen, seed=1,
                 executor=RayExecutor(workers=2))
    assert local.failed == on_ray.failed > 0
    assert snapshot(tmp_path / "local") == snapshot(tmp_path / "ray")


class _Killed(KeyboardInterrupt):
    pass


def _interrupt_after(monkeypatch, n: int) -> None:
    """The driver is interrupted right after writing ``n`` results (as a kill would)."""
    real = ray_executor.write_results
    seen = []

    def write_then_die(results, out_dir):
        if len(seen) >= n:
            raise _Killed()
        seen.append(1)
        return real(results, out_dir)

    monkeypatch.setattr(ray_executor, "write_results", write_then_die)


@pytest.mark.parametrize("resume_on", ["local", "ray"])
def test_interrupted_ray_run_resumes_to_the_same_folder(ray_local, pairs_csv, reference,
                                                        tmp_path, monkeypatch, resume_on):
    out = tmp_path / "set"
    _interrupt_after(monkeypatch, 3)
    with pytest.raises(_Killed):
        run(pairs_csv, out, VARIANTS, seed=7, executor=RayExecutor(workers=2))
    monkeypatch.undo()
    partial = snapshot(out)
    assert len([n for n in partial if n.endswith(".png")]) == 6  # 3 pairs x 2 variants
    assert partial["manifest.jsonl"].count(b"\n") == 6
    executor = RayExecutor(workers=2) if resume_on == "ray" else None
    s = run(pairs_csv, out, VARIANTS, seed=7, resume=True, executor=executor)
    assert (s.skipped, s.generated, s.failed) == (3, 3, 0)
    assert snapshot(out) == reference


def test_local_run_resumed_on_ray(ray_local, pairs_csv, reference, tmp_path):
    out = tmp_path / "set"
    run(pairs_csv, out, VARIANTS, seed=7)
    for f in sorted(out.glob("*_inverted.png"))[:2]:  # two pairs lost an image
        f.unlink()
    s = run(pairs_csv, out, VARIANTS, seed=7, resume=True, executor=RayExecutor(workers=2))
    assert (s.skipped, s.generated) == (4, 2)
    assert snapshot(out) == reference


def test_a_dead_ray_worker_is_a_clear_error(ray_local, pairs_csv, tmp_path):
    crash = {"crash_on": "002"}
    with pytest.raises(ChildProcessError, match="worker process died.*re-run continues"):
        run(pairs_csv, tmp_path / "set", crash, gen=CrashGen,
            executor=RayExecutor(workers=2))


def test_make_executor():
    assert make_executor("local") is None
    assert isinstance(make_executor("ray", workers=2), RayExecutor)
    with pytest.raises(ValueError, match="need --executor ray"):
        make_executor("local", address="auto")
    with pytest.raises(ValueError, match="unknown executor 'dask'"):
        make_executor("dask")
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        RayExecutor(workers=0)


def test_missing_ray_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kw):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ray_executor.RayUnavailableError, match=r"pip install 'morphlab\[ray\]'"):
        RayExecutor()


def test_cli_executor_ray(ray_local, pairs_csv, reference, tmp_path):
    from click.testing import CliRunner

    from morphlab.cli import main

    out = tmp_path / "set"
    args = ["generate", str(pairs_csv), "-g", "avg-test", "-o", str(out), "--seed", "7",
            "--variant", "plain", "--variant", "inverted", "--no-progress"]
    res = CliRunner().invoke(main, [*args, "--executor", "ray", "-j", "2"])
    assert res.exit_code == 0, res.output
    assert "6 generated, 0 failed; 12 morphs" in res.output
    assert snapshot(out) == reference
    res = CliRunner().invoke(main, [*args, "--ray-address", "auto"])
    assert res.exit_code == 1 and "need --executor ray" in res.output


def test_unreachable_cluster_is_refused_before_the_run(pairs_csv, tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ray_executor.RayUnavailableError, match=f"127.0.0.1:{port}: cannot connect"):
        RayExecutor(address=f"127.0.0.1:{port}")


@pytest.fixture(scope="module")
def small_model(sample_dir, tmp_path_factory) -> tuple[Path, list[Path]]:
    """A freq-logreg model of 6 sample identities (4 landmark morphs) and images to score."""
    pytest.importorskip("sklearn", reason="scikit-learn (morphlab[detect])")
    from morphlab.detect import (
        attack_presentations,
        bona_fide_presentations,
        train_detector,
    )

    root = tmp_path_factory.mktemp("ray-detect")
    ds = load_folder(sample_dir / "neutral")
    pairs = root / "pairs.csv"
    write_pairs(make_pairs(ds, per_subject=1, n_pairs=4, seed=0), pairs)
    generate_attack_set(pairs, "landmark", {}, root / "attacks", image_format="jpg",
                        quality=90, progress=False)
    bona = sorted((sample_dir / "neutral").glob("*.jpg"))
    listing = root / "bona.txt"
    listing.write_text("".join(f"{p}\n" for p in bona[:6]))
    train_detector("freq-logreg", bona_fide_presentations([listing])
                   + attack_presentations([root / "attacks"]), root / "model",
                   params={"size": 48, "grid": 2, "n_bins": 8}, crop_size=64, progress=False)
    (root / "broken.jpg").write_bytes(b"not an image")
    images = [*bona, *sorted((root / "attacks").glob("*.jpg")), root / "broken.jpg"]
    return root / "model", images


def test_detect_score_on_ray_gives_the_same_rows(ray_local, small_model, tmp_path):
    from click.testing import CliRunner

    from morphlab.cli import main
    from morphlab.detect import score_files

    model, images = small_model
    local = score_files(model, images, progress=False)
    on_ray = ray_executor.score_files_ray(model, images, executor=RayExecutor(workers=2),
                                          progress=False)
    # the same rows; a score's last digit may differ (floating-point sums depend on the
    # batch a worker scores, as they do for a local run split the same way)
    assert [{k: v for k, v in r.items() if k != "score"} for r in on_ray] == \
        [{k: v for k, v in r.items() if k != "score"} for r in local]
    assert [r.get("score", 0.0) for r in on_ray] == pytest.approx(
        [r.get("score", 0.0) for r in local], rel=1e-12, abs=1e-12)
    assert sum("error" in r for r in local) == 1 and sum("score" in r for r in local) > 10
    res = CliRunner().invoke(main, ["detect", "score", str(model), *map(str, images),
                                    "--csv", str(tmp_path / "ray.csv"), "--no-progress",
                                    "--executor", "ray", "-j", "2"])
    assert res.exit_code == 0, res.output
    assert f"{len(images) - 1} scores written" in res.output
    lines = (tmp_path / "ray.csv").read_text().splitlines()
    assert len(lines) == len(images) + 1 and "broken.jpg" in lines[-1]
    # --no-cache reaches the workers: the crops are made afresh there, the rows are the same
    res = CliRunner().invoke(main, ["detect", "score", str(model), *map(str, images),
                                    "--csv", str(tmp_path / "ray-nc.csv"), "--no-progress",
                                    "--executor", "ray", "-j", "2", "--no-cache"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "ray-nc.csv").read_text() == (tmp_path / "ray.csv").read_text()
