"""The attack-set runner: files, manifest, failures, resumption, conflicts, workers."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from runner_testgens import (
    AverageGen,
    BatchAverageGen,
    CrashGen,
    snapshot,
)
from runner_testgens import run_set as run

from morphlab import __version__
from morphlab.generators.base import Generator, MorphOutput
from morphlab.generators.runner import (
    MANIFEST_NAME,
    RUN_NAME,
    RunConflictError,
    load_manifest,
    pair_seed,
)
from morphlab.io import read_image, sha256_file, write_image

VARIANTS = {"variants": ["plain", "inverted"]}



@pytest.fixture(scope="module")
def reference(pairs_csv: Path, tmp_path_factory) -> dict[str, bytes]:
    """An uninterrupted run with two variants."""
    out = tmp_path_factory.mktemp("ref") / "set"
    s = run(pairs_csv, out, VARIANTS)
    assert (s.pairs, s.generated, s.failed, s.morphs) == (6, 6, 0, 12)
    return snapshot(out)


def test_files_and_manifest(pairs_csv: Path, reference: dict, tmp_path: Path):
    out = tmp_path / "set"
    run(pairs_csv, out, VARIANTS)
    assert snapshot(out) == reference  # deterministic: same bytes
    recs = load_manifest(out)
    assert len(recs) == 12
    proto = json.loads(Path(str(pairs_csv) + ".json").read_text())
    root = Path(proto["dataset_dir"])
    first = recs[0]
    assert first["file"] == f"0001_{first['subject_a']['id']}_{first['subject_b']['id']}_plain.png"
    assert recs[1]["file"].endswith("_inverted.png") and recs[1]["pair_id"] == "0001"
    assert first["status"] == "ok" and first["tag"] == "plain"
    assert first["generator"] == "avg-test" and first["generator_version"] == "1"
    assert first["params"] == {
        "alpha": 0.5, "size": 48, "variants": ["plain", "inverted"], "fail_subjects": [],
        "delay": 0.0, "variant": "plain",
    }
    assert first["seed"] == pair_seed(0, "0001") and first["run_seed"] == 0
    assert first["morphlab_version"] == __version__
    assert first["landmark_backend"] is None
    assert isinstance(first["extra"]["mean"], float)
    for rec in recs:
        assert sha256_file(rec["path"]) == rec["sha256"]
        assert read_image(rec["path"]).shape == (48, 48, 3)
        for side in ("subject_a", "subject_b"):
            c = rec[side]
            assert Path(c["path"]) == root / c["relpath"]
            assert sha256_file(c["path"]) == c["sha256"]
            assert c["relpath"] == f"neutral/{c['id']}_03.png"
    cfg = json.loads((out / RUN_NAME).read_text())
    assert cfg["generator"] == "avg-test" and cfg["run_seed"] == 0
    assert cfg["pairs_sha256"] == sha256_file(pairs_csv)
    assert cfg["output_tags"] == ["plain", "inverted"]


def test_pair_seed():
    assert pair_seed(0, "0001") == pair_seed(0, "0001")
    seeds = {pair_seed(s, p) for s in range(3) for p in ("0001", "0002", "0003")}
    assert len(seeds) == 9 and all(0 <= x < 2**32 for x in seeds)


def test_seed_changes_the_morphs(pairs_csv: Path, reference: dict, tmp_path: Path):
    run(pairs_csv, tmp_path, VARIANTS, seed=1)
    other = snapshot(tmp_path)
    pngs = [n for n in reference if n.endswith(".png")]
    assert sorted(n for n in other if n.endswith(".png")) == sorted(pngs)
    assert all(other[n] != reference[n] for n in pngs)


def test_failing_pair_is_logged_and_run_continues(pairs_csv: Path, tmp_path: Path, caplog):
    victim = load_manifest(_any_run(pairs_csv, tmp_path / "probe"))[0]["subject_a"]["id"]
    with caplog.at_level(logging.WARNING, logger="morphlab"):
        s = run(pairs_csv, tmp_path / "set", {"fail_subjects": [victim]})
    assert s.failed == 2 and s.generated == 4  # per_subject=2: the victim is in two pairs
    assert "failed: NoFaceError" in caplog.text
    recs = load_manifest(tmp_path / "set", include_failed=True)
    failed = [r for r in recs if r["status"] == "failed"]
    assert len(failed) == 2 and len(recs) == 6
    for r in failed:
        assert victim in (r["subject_a"]["id"], r["subject_b"]["id"])
        assert r["error"].startswith("NoFaceError: ") and "no face found" in r["error"]
        assert "file" not in r and r["seed"] == pair_seed(0, r["pair_id"])
    assert len(load_manifest(tmp_path / "set")) == 4  # consumers see the morphs only
    # a re-run retries the failed pairs only (they fail again: still one line each)
    again = run(pairs_csv, tmp_path / "set", {"fail_subjects": [victim]})
    assert (again.skipped, again.generated, again.failed) == (4, 0, 2)
    assert len(load_manifest(tmp_path / "set", include_failed=True)) == 6


def _any_run(pairs_csv: Path, out: Path) -> Path:
    run(pairs_csv, out)
    return out


def test_failures_are_retried_on_rerun(pairs_csv: Path, reference: dict, tmp_path: Path):
    """A pair failing on a broken contributor image succeeds once the image is repaired."""
    root = Path(json.loads(Path(str(pairs_csv) + ".json").read_text())["dataset_dir"])
    recs = [json.loads(x) for x in reference[MANIFEST_NAME].decode().splitlines()]
    victim = root / recs[0]["subject_a"]["relpath"]
    good = victim.read_bytes()
    try:
        victim.write_bytes(good[:40])  # truncated PNG
        s = run(pairs_csv, tmp_path, VARIANTS)
        assert s.failed == 2 and "ImageError" in s.failures[0]["error"]
    finally:
        victim.write_bytes(good)
    s = run(pairs_csv, tmp_path, VARIANTS)
    assert (s.skipped, s.generated, s.failed) == (4, 2, 0)
    assert snapshot(tmp_path) == reference


def test_resume_repairs_a_damaged_folder(pairs_csv: Path, reference: dict, tmp_path: Path):
    run(pairs_csv, tmp_path, VARIANTS)
    names = sorted(n for n in reference if n.endswith(".png"))
    (tmp_path / names[0]).unlink()  # image gone → its pair is redone
    (tmp_path / names[5]).write_bytes(b"changed")  # hash mismatch → redone
    (tmp_path / f".{names[1]}.k1ll3d_x.tmp").write_bytes(b"half")  # a killed write
    (tmp_path / ".notes.abc.tmp").write_bytes(b"mine")  # not morphlab's: kept
    man = tmp_path / MANIFEST_NAME
    lines = man.read_bytes().splitlines(keepends=True)
    man.write_bytes(b"".join(lines[:-1]) + lines[-1][:30])  # partial last line
    s = run(pairs_csv, tmp_path, VARIANTS, resume=True)
    assert s.skipped == 3 and s.generated == 3  # pairs 1, 3 and 6 redone
    assert snapshot(tmp_path) == reference
    assert [f.name for f in tmp_path.glob(".*.tmp")] == [".notes.abc.tmp"]


def test_finished_run_is_skipped(pairs_csv: Path, reference: dict, tmp_path: Path):
    run(pairs_csv, tmp_path, VARIANTS)
    s = run(pairs_csv, tmp_path, VARIANTS)
    assert (s.skipped, s.generated, s.morphs) == (6, 0, 12)
    assert snapshot(tmp_path) == reference


def test_different_configuration_is_refused(pairs_csv: Path, tmp_path: Path):
    out = tmp_path / "set"
    run(pairs_csv, out)
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    for kw, needle in [
        ({"params": {"alpha": 0.3}}, "params.alpha: 0.5 → 0.3"),
        ({"seed": 5}, "run_seed: 0 → 5"),
        ({"image_format": "jpg"}, "image_format: 'png' → 'jpg'"),
        ({"params": {"alpha": 0.3}, "resume": True}, "cannot resume it"),
    ]:
        with pytest.raises(RunConflictError) as info:
            run(pairs_csv, out, **kw)
        assert needle in str(info.value) and "--overwrite" in str(info.value)
        assert snapshot(out) == before  # nothing touched
    # --overwrite: the previous run's files go, files it does not list stay
    s = run(pairs_csv, out, {"alpha": 0.3}, overwrite=True, image_format="jpg")
    assert s.generated == 6
    files = sorted(f.name for f in out.iterdir())
    assert "notes.txt" in files and not any(f.endswith(".png") for f in files)
    assert sum(f.endswith(".jpg") for f in files) == 6
    assert load_manifest(out)[0]["params"]["alpha"] == 0.3
    assert json.loads((out / RUN_NAME).read_text())["jpeg_quality"] == 95


def test_changed_pairs_file_is_refused(pairs_csv: Path, tmp_path: Path):
    run(pairs_csv, tmp_path / "set")
    other = tmp_path / "pairs.csv"
    lines = pairs_csv.read_text().splitlines(keepends=True)
    other.write_text("".join(lines[:-1]))
    with pytest.raises(RunConflictError, match="the pairs file's content differs"):
        run(other, tmp_path / "set", dataset_dir=json.loads(Path(str(pairs_csv) + ".json").read_text())["dataset_dir"])


def test_output_folder_rules(pairs_csv: Path, tmp_path: Path):
    with pytest.raises(RunConflictError, match="nothing to resume"):
        run(pairs_csv, tmp_path / "new", resume=True)
    with pytest.raises(ValueError, match="exclude each other"):
        run(pairs_csv, tmp_path / "x", resume=True, overwrite=True)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "photo.png").write_bytes(b"x")
    with pytest.raises(RunConflictError, match="not empty and holds no morphlab run"):
        run(pairs_csv, busy)
    assert run(pairs_csv, busy, overwrite=True).generated == 6
    assert (busy / "photo.png").read_bytes() == b"x"
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunConflictError, match="not a folder"):
        run(pairs_csv, tmp_path / "file")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / RUN_NAME).write_text("{oops")
    with pytest.raises(RunConflictError, match="unreadable"):
        run(pairs_csv, bad)


def test_bad_generator_parameters(pairs_csv: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="generator 'avg-test': bad parameters .*'nope'"):
        run(pairs_csv, tmp_path, {"nope": 1})
    with pytest.raises(ValueError, match="jobs"):
        run(pairs_csv, tmp_path, jobs=0)
    with pytest.raises(ValueError, match="unknown image format 'gif'"):
        run(pairs_csv, tmp_path, image_format="gif")


class WrongTags(AverageGen):
    """Returns a tag it did not announce: every pair must fail cleanly."""

    name = "wrong-tags-test"

    def generate(self, a, b, *, seed):
        return [MorphOutput(o.image, "other") for o in super().generate(a, b, seed=seed)]


def test_generator_bugs_become_failures(pairs_csv: Path, tmp_path: Path):
    s = run(pairs_csv, tmp_path, gen=WrongTags)
    assert s.failed == 6 and "expected ['plain']" in s.failures[0]["error"]
    assert not list(tmp_path.glob("*.png"))


def test_jobs_2_equals_jobs_1(pairs_csv: Path, reference: dict, tmp_path: Path):
    s = run(pairs_csv, tmp_path, VARIANTS, jobs=2)
    assert s.generated == 6
    assert snapshot(tmp_path) == reference


def test_worker_crash_is_a_clear_error(pairs_csv: Path, tmp_path: Path):
    last = pairs_csv.read_text().splitlines()[-1].split(",")[1]
    with pytest.raises(ChildProcessError, match="a worker process died .* re-run continues"):
        run(pairs_csv, tmp_path, {"crash_on": last, "delay": 0.05}, gen=CrashGen, jobs=2)
    for rec in load_manifest(tmp_path, verify=True):  # what finished is intact
        assert last not in (rec["subject_a"]["id"], rec["subject_b"]["id"])


def test_batches(pairs_csv: Path, tmp_path: Path):
    s = run(pairs_csv, tmp_path / "b", gen=BatchAverageGen)
    assert s.generated == 6
    recs = load_manifest(tmp_path / "b")
    assert [r["extra"]["batch"] for r in recs] == [3] * 6
    # same pixels as the unbatched generator
    run(pairs_csv, tmp_path / "u")
    assert [r["sha256"] for r in recs] == [r["sha256"] for r in load_manifest(tmp_path / "u")]


# ----------------------------------------------------------------------------------------
# load_manifest
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "edit, exc, needle",
    [
        (lambda r: "{not json", ValueError, "line 2: not valid JSON"),
        (lambda r: json.dumps([1]), ValueError, "line 2: expected a JSON object"),
        (lambda r: json.dumps({**r, "status": "maybe"}), ValueError, "line 2: status must be"),
        (lambda r: json.dumps({k: v for k, v in r.items() if k != "sha256"}), ValueError,
         "line 2: missing key(s) sha256"),
        (lambda r: json.dumps({**r, "file": "../x.png"}), ValueError, "is not a file name inside"),
        (lambda r: json.dumps({**r, "file": "gone.png"}), FileNotFoundError, "morph file"),
    ],
)
def test_load_manifest_validates(pairs_csv: Path, tmp_path: Path, edit, exc, needle):
    run(pairs_csv, tmp_path)
    man = tmp_path / MANIFEST_NAME
    lines = man.read_text().splitlines()
    lines[1] = edit(json.loads(lines[1]))
    man.write_text("\n".join(lines) + "\n")
    with pytest.raises(exc) as info:
        load_manifest(man)
    assert needle in str(info.value) and str(man) in str(info.value)


def test_load_manifest_verify_and_partial_line(pairs_csv: Path, tmp_path: Path, caplog):
    run(pairs_csv, tmp_path)
    recs = load_manifest(tmp_path / MANIFEST_NAME, verify=True)
    write_image(recs[2]["path"], read_image(recs[3]["path"]))
    with pytest.raises(ValueError, match="line 3: .* does not match its recorded sha256"):
        load_manifest(tmp_path, verify=True)
    man = tmp_path / MANIFEST_NAME
    man.write_bytes(man.read_bytes() + b'{"status": "ok", "fi')
    with caplog.at_level(logging.WARNING, logger="morphlab"):
        assert len(load_manifest(tmp_path)) == 6
    assert "partial last line" in caplog.text
    with pytest.raises(FileNotFoundError, match="manifest not found"):
        load_manifest(tmp_path / "nowhere")


def test_generator_base_is_respected():
    """The test generators follow the Generator contract they stand in for."""
    g = AverageGen()
    assert isinstance(g, Generator) and g.output_tags() == ["plain"]
    json.dumps(g.get_params())
