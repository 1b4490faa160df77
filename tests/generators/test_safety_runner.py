"""Data safety of ``morphlab generate`` (issue 10 items 3, 4, 5, 7, 13).

Folder lock, output folder disjoint from the dataset, ``--overwrite`` deleting only what
the manifest lists, workers that end with the parent, Ctrl-C, exit status. Processes are
synchronised on files the test generator writes (``block-test``), never on sleeps.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from runner_testgens import AverageGen, make_dataset

from morphlab.cli import main
from morphlab.generators.runner import (
    MANIFEST_NAME,
    RUN_NAME,
    RunConflictError,
    generate_attack_set,
    load_manifest,
)
from morphlab.outdir import LOCK_NAME, locked_folder

TESTGENS = Path(__file__).resolve().parent
CLI = [sys.executable, "-c", "import runner_testgens; from morphlab.cli import main; main()"]


def _dataset_dir(pairs_csv: Path) -> Path:
    return Path(json.loads(Path(str(pairs_csv) + ".json").read_text())["dataset_dir"])


def _subjects(pairs_csv: Path) -> list[str]:
    rows = [line.split(",") for line in pairs_csv.read_text().splitlines()[1:]]
    return sorted({r[1] for r in rows} | {r[3] for r in rows})


def run(pairs_csv: Path, out: Path, params=None, **kw):
    kw.setdefault("progress", False)
    return generate_attack_set(pairs_csv, kw.pop("gen", AverageGen), params or {}, out, **kw)


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTGENS), env.get("PYTHONPATH")]))
    return env


def _block_args(sig: Path, release: Path) -> list[str]:
    return ["-g", "block-test", "--param", f"signal_dir={sig}", "--param", f"release={release}",
            "--no-progress"]


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    """Poll ``condition`` until it holds (a deadline, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def working_pids(sig: Path) -> set[int]:
    """Processes that started a pair (block-test names its marker files ``<pid>-…``)."""
    return {int(f.name.split("-")[0]) for f in sig.iterdir()}


# ----------------------------------------------------------------------------------------
# item 4: one writer per folder
# ----------------------------------------------------------------------------------------
def test_a_locked_folder_is_refused_naming_the_holder(pairs_csv: Path, tmp_path: Path):
    out = tmp_path / "set"
    with locked_folder(out):  # this test process is "the other writer"
        res = subprocess.run([*CLI, "generate", str(pairs_csv), "-o", str(out), "-g", "avg-test",
                              "--no-progress"], env=_env(), capture_output=True, text=True,
                             timeout=300)
    assert res.returncode == 1, res.stderr
    assert "another morphlab process is writing this folder" in res.stderr
    assert f"pid {os.getpid()}" in res.stderr and "Traceback" not in res.stderr
    assert sorted(f.name for f in out.iterdir()) == [LOCK_NAME]  # nothing written


def test_two_generate_runs_cannot_both_write(pairs_csv: Path, tmp_path: Path):
    out, sig, release = tmp_path / "set", tmp_path / "sig", tmp_path / "go"
    sig.mkdir()
    cmd = [*CLI, "generate", str(pairs_csv), "-o", str(out), *_block_args(sig, release)]
    first = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        wait_for(lambda: any(sig.iterdir()) or first.poll() is not None, "the first run to start")
        assert first.poll() is None, first.communicate()
        second = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
        assert second.returncode == 1
        assert f"pid {first.pid}" in second.stderr and "writing this folder" in second.stderr
        release.touch()
        stdout, stderr = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, stderr
    assert "6 pairs: 0 already done, 6 generated, 0 failed; 6 morphs" in stdout
    lines = (out / MANIFEST_NAME).read_text().splitlines()
    recs = load_manifest(out, verify=True)
    assert len(lines) == len(recs) == 6 and len({r["pair_id"] for r in recs}) == 6


def test_the_lock_file_is_not_a_foreign_file(pairs_csv: Path, tmp_path: Path):
    out = tmp_path / "set"
    out.mkdir()
    (out / LOCK_NAME).write_text("")  # left by an earlier (refused) command: still "empty"
    run(pairs_csv, out)
    assert (out / LOCK_NAME).is_file()
    assert run(pairs_csv, out).skipped == 6  # no "not empty" refusal on re-run
    s = run(pairs_csv, out, {"alpha": 0.3}, overwrite=True)
    assert s.generated == 6 and (out / LOCK_NAME).is_file()
    assert LOCK_NAME not in {r["file"] for r in load_manifest(out)}


# ----------------------------------------------------------------------------------------
# item 3: the output folder is not, inside or around the dataset
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("where, needle", [
    (lambda ds: ds, "is the dataset folder"),
    (lambda ds: ds / "morphs", "lies inside the dataset folder"),
    (lambda ds: ds / "neutral", "lies inside the dataset folder"),
    (lambda ds: ds.parent, "contains the"),
])
def test_output_folder_must_be_disjoint_from_the_dataset(pairs_csv: Path, where, needle):
    ds = _dataset_dir(pairs_csv)
    before = sorted(p.relative_to(ds.parent) for p in ds.parent.rglob("*"))
    for overwrite in (False, True):
        with pytest.raises(ValueError, match=needle):
            run(pairs_csv, where(ds), overwrite=overwrite)
    assert sorted(p.relative_to(ds.parent) for p in ds.parent.rglob("*")) == before


def test_a_work_folder_holding_pairs_images_and_outputs(tmp_path: Path):
    """Without a sidecar the dataset folder is the pairs file's: only image folders count."""
    work = tmp_path / "work"
    make_dataset(work / "photos", n=2)
    (work / "pairs.csv").write_text(
        "pair_id,subject_a,image_a,subject_b,image_b\n"
        f"0001,{_pair_ids(work)[0]},photos/neutral/{_pair_ids(work)[0]}_03.png,"
        f"{_pair_ids(work)[1]},photos/neutral/{_pair_ids(work)[1]}_03.png\n")
    assert run(work / "pairs.csv", work / "morphs").generated == 1
    with pytest.raises(ValueError, match="lies inside the folder of pair images"):
        run(work / "pairs.csv", work / "photos" / "neutral" / "morphs")
    with pytest.raises(ValueError, match="contains the pairs file"):
        run(work / "pairs.csv", work, overwrite=True)


def _pair_ids(work: Path) -> list[str]:
    return sorted(p.stem.split("_")[0] for p in (work / "photos" / "neutral").glob("*.png"))


def test_cli_refuses_an_output_inside_the_dataset(pairs_csv: Path, tmp_path: Path):
    ds = _dataset_dir(pairs_csv)
    res = CliRunner().invoke(main, ["generate", str(pairs_csv), "-o", str(ds / "neutral"),
                                    "-g", "avg-test", "--overwrite", "--no-progress"])
    assert res.exit_code == 1 and "Error: output folder" in res.output
    assert not (ds / "neutral" / RUN_NAME).exists()


# ----------------------------------------------------------------------------------------
# item 5's rule for --overwrite: only what the manifest lists, unchanged
# ----------------------------------------------------------------------------------------
def test_overwrite_keeps_a_changed_morph_and_deletes_nothing(pairs_csv: Path, tmp_path: Path):
    out = tmp_path / "set"
    run(pairs_csv, out)
    first = load_manifest(out)[0]["path"]
    Path(first).write_bytes(b"retouched by hand")
    files = sorted(f.name for f in out.iterdir())
    with pytest.raises(RunConflictError, match="changed since morphlab wrote it"):
        run(pairs_csv, out, {"alpha": 0.3}, overwrite=True)
    assert sorted(f.name for f in out.iterdir()) == files
    assert Path(first).read_bytes() == b"retouched by hand"


def test_overwrite_never_replaces_files_of_a_folder_without_a_run(pairs_csv: Path,
                                                                  tmp_path: Path):
    ref = tmp_path / "ref"
    run(pairs_csv, ref)
    name = load_manifest(ref)[0]["file"]
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / name).write_bytes(b"my own photo")  # named like one of the morphs
    with pytest.raises(RunConflictError, match="files named like this run's outputs"):
        run(pairs_csv, busy, overwrite=True)
    assert (busy / name).read_bytes() == b"my own photo"
    # a manifest.jsonl morphlab did not write (no run.json): never used to delete
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.png").write_bytes(b"x")
    (other / MANIFEST_NAME).write_text(json.dumps({"status": "ok", "file": "keep.png"}) + "\n")
    with pytest.raises(RunConflictError, match="manifest.jsonl"):
        run(pairs_csv, other, overwrite=True)
    assert (other / "keep.png").read_bytes() == b"x"
    # another tool's run.json
    (busy / name).unlink()
    (busy / RUN_NAME).write_text('{"tool": "other"}')
    with pytest.raises(RunConflictError, match="not a morphlab run"):
        run(pairs_csv, busy, overwrite=True)
    assert (busy / RUN_NAME).read_text() == '{"tool": "other"}'


def test_hidden_files_of_the_user_are_not_taken_for_temp_files(pairs_csv: Path, tmp_path: Path):
    out = tmp_path / "set"
    out.mkdir()
    (out / ".draft.tmp").write_text("mine")
    run(pairs_csv, out)
    run(pairs_csv, out)
    assert (out / ".draft.tmp").read_text() == "mine"


# ----------------------------------------------------------------------------------------
# item 13: exit status
# ----------------------------------------------------------------------------------------
def _cli(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def test_exit_1_when_every_pair_failed(pairs_csv: Path, tmp_path: Path):
    fail = json.dumps(_subjects(pairs_csv))
    res = _cli("generate", pairs_csv, "-o", tmp_path / "set", "-g", "avg-test",
               "--param", f"fail_subjects={fail}", "--no-progress")
    assert res.exit_code == 1
    last = res.output.strip().splitlines()[-1]
    assert last.startswith("Error: nothing succeeded: all 6 pairs failed")


def test_partial_success_exits_0_with_the_failure_count_last(pairs_csv: Path, tmp_path: Path):
    victim = _subjects(pairs_csv)[0]
    res = _cli("generate", pairs_csv, "-o", tmp_path / "set", "-g", "avg-test",
               "--param", f'fail_subjects=["{victim}"]', "--no-progress")
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert lines[-1].startswith("2 of 6 pairs failed")
    assert sum("failed: pair" in x for x in lines) == 2
    # a re-run where the same pairs fail again: still a partial success
    res = _cli("generate", pairs_csv, "-o", tmp_path / "set", "-g", "avg-test",
               "--param", f'fail_subjects=["{victim}"]', "--no-progress")
    assert res.exit_code == 0 and res.output.strip().splitlines()[-1].startswith("2 of 6")


def test_a_full_disk_stops_the_run_with_exit_1(pairs_csv: Path, tmp_path: Path, monkeypatch):
    import morphlab.generators.batches as batches

    calls = []

    def full(path, image, **kw):
        calls.append(path)
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(batches, "write_image", full)
    with pytest.raises(OSError, match="No space left on device.*the run stopped") as info:
        run(pairs_csv, tmp_path / "lib")
    assert info.value.errno == errno.ENOSPC and len(calls) == 1  # not one failure per pair
    assert (tmp_path / "lib" / MANIFEST_NAME).read_text() == ""
    res = _cli("generate", pairs_csv, "-o", tmp_path / "cli", "-g", "avg-test", "--no-progress")
    assert res.exit_code == 1
    assert "No space left on device" in res.output and "Traceback" not in res.output
    # space freed: the same command continues
    monkeypatch.undo()
    res = _cli("generate", pairs_csv, "-o", tmp_path / "cli", "-g", "avg-test", "--no-progress")
    assert res.exit_code == 0 and "6 generated, 0 failed" in res.output


# ----------------------------------------------------------------------------------------
# item 7: workers end with the parent; Ctrl-C / SIGTERM end everything at once
# ----------------------------------------------------------------------------------------
def _start_blocked(pairs_csv: Path, tmp_path: Path, jobs: int,
                   fork: bool = False) -> tuple[subprocess.Popen, set]:
    """A generate run whose pairs block forever; returns once ``jobs`` pairs started
    (``fork``: the generator is fork-safe, so the runner forks its workers)."""
    sig = tmp_path / "sig"
    sig.mkdir()
    cmd = [*CLI, "generate", str(pairs_csv), "-o", str(tmp_path / "set"), "-j", str(jobs),
           *_block_args(sig, tmp_path / "never"), *(["--param", "fork=true"] if fork else [])]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    wait_for(lambda: len(working_pids(sig)) >= jobs or proc.poll() is not None,
             f"{jobs} pair(s) to start")
    assert proc.poll() is None, proc.communicate()
    return proc, working_pids(sig)


def _reap(proc: subprocess.Popen, workers: set) -> None:
    for pid in workers:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def _forked(pid: int, parent: int) -> bool:
    """A forked worker runs its parent's command line; a spawned one runs Python's
    ``multiprocessing.spawn`` entry point."""
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    return cmdline == Path(f"/proc/{parent}/cmdline").read_bytes() and b"spawn" not in cmdline


@pytest.mark.parametrize("fork", [False, True], ids=["spawned", "forked"])
def test_workers_exit_when_the_parent_is_killed(pairs_csv: Path, tmp_path: Path, fork: bool):
    proc, workers = _start_blocked(pairs_csv, tmp_path, jobs=2, fork=fork)
    try:
        assert len(workers) == 2 and proc.pid not in workers
        if sys.platform.startswith("linux"):
            assert all(_forked(w, proc.pid) == fork for w in workers)
        os.kill(proc.pid, signal.SIGKILL)  # the OOM killer: no clean-up in the parent
        proc.wait(timeout=60)
        wait_for(lambda: not any(alive(w) for w in workers), "the orphaned workers to exit", 30)
    finally:
        _reap(proc, workers)


@pytest.mark.parametrize("signum, jobs, fork", [
    (signal.SIGINT, 2, False), (signal.SIGINT, 1, False), (signal.SIGTERM, 2, False),
    (signal.SIGINT, 2, True), (signal.SIGTERM, 2, True)])
def test_a_signal_ends_the_run_and_its_workers_at_once(pairs_csv: Path, tmp_path: Path,
                                                       signum: int, jobs: int, fork: bool):
    """The running pairs never finish, so an exit at all proves it did not wait for them.
    Forked workers too: they inherit the parent's SIGTERM handler, reset to the default."""
    proc, workers = _start_blocked(pairs_csv, tmp_path, jobs=jobs, fork=fork)
    try:
        os.kill(proc.pid, signum)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 128 + signum, stderr
        assert f"Interrupted ({signal.Signals(signum).name})" in stderr
        assert "Traceback" not in stderr
        wait_for(lambda: not any(alive(w) for w in workers), "the workers to exit", 30)
    finally:
        _reap(proc, workers)
    assert load_manifest(tmp_path / "set") == []  # nothing half-recorded
    assert not list((tmp_path / "set").glob("*.png"))


def test_a_worker_whose_parent_is_gone_exits_without_pdeathsig(tmp_path: Path):
    """The portable fallback: the watchdog thread notices the parent pid change."""
    flag = tmp_path / "worker-ready"
    worker = (
        "import os, sys, time\n"
        "import morphlab.workers as w\n"
        "w._set_parent_death_signal = lambda *a: False  # only the watchdog is left\n"
        "w._init_worker(os.getppid(), None, ())\n"
        f"open({str(flag)!r}, 'w').write(str(os.getpid()))\n"
        "time.sleep(300)\n"
    )
    parent = (
        "import subprocess, sys, os, time\n"
        f"p = subprocess.Popen([sys.executable, '-c', {worker!r}])\n"
        f"while not os.path.exists({str(flag)!r}): time.sleep(0.01)\n"
        "print(p.pid, flush=True)\n"
        "os._exit(0)\n"
    )
    res = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True,
                         timeout=120)
    pid = int(res.stdout.strip())
    try:
        wait_for(lambda: not alive(pid), "the orphan to notice its parent is gone", 30)
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    # and a worker started after its parent died does not even begin
    res = subprocess.run([sys.executable, "-c", "import morphlab.workers as w; "
                          "w._init_worker(1, None, ()); print('ran')"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "ran" not in res.stdout


def test_a_pair_failing_on_a_changed_contributor_leaves_no_stale_morph(pairs_csv: Path,
                                                                       tmp_path: Path):
    out = tmp_path / "set"
    run(pairs_csv, out)
    rec = load_manifest(out)[0]
    victim = Path(rec["subject_a"]["path"])
    good = victim.read_bytes()
    try:
        victim.write_bytes(good[:40])  # changed under the same name, now unreadable
        s = run(pairs_csv, out)
    finally:
        victim.write_bytes(good)
    assert (s.skipped, s.failed) == (4, 2)
    assert not Path(rec["path"]).exists()  # the morph of the old photo is gone
    assert len(list(out.glob("*.png"))) == len(load_manifest(out)) == 4
