"""The command line: pairs, generate (incl. a killed and resumed run), list, demo, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from morphlab import __version__
from morphlab.cli import generator_params, main, parse_param
from morphlab.generators.runner import MANIFEST_NAME, load_manifest
from morphlab.io import read_image, sha256_file

TESTGENS = Path(__file__).resolve().parent / "generators"


@pytest.fixture(scope="module")
def testgens():
    """The test generators (avg-test…) registered in this process."""
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(TESTGENS))
    import runner_testgens

    yield runner_testgens
    mp.undo()


def invoke(*args: str, ok: bool = True):
    res = CliRunner().invoke(main, [str(a) for a in args])
    if ok and res.exit_code != 0:
        raise AssertionError(f"exit {res.exit_code}: {res.output}\n{res.exception!r}")
    return res


@pytest.fixture(scope="module")
def small(tmp_path_factory, testgens) -> Path:
    """A small dataset (6 subjects, 64 px) and its pairs (per subject 2: 6 pairs)."""
    root = testgens.make_dataset(tmp_path_factory.mktemp("cli") / "ds", n=6)
    invoke("pairs", root, "--pairs-file", root.parent / "pairs.csv", "--per-subject", 2,
           "--capture", "03")
    return root.parent / "pairs.csv"


def test_version_and_help():
    assert invoke("--version").output.strip() == f"morphlab, version {__version__}"
    out = invoke("--help").output
    for cmd in ("pairs", "generate", "list", "demo"):
        assert cmd in out


def test_pairs_command_frll(frll_set: Path, frll_set_subjects: int, tmp_path: Path):
    """The embedded sample (6 women, 6 men) and, with MORPHLAB_TEST_DATA, the full set."""
    args = [
        "pairs", frll_set, "-o", tmp_path / "p", "--strategy", "same-gender", "--seed", 4,
        "--metadata", frll_set / "london_info.csv", "--meta-id-column", "face_id",
        "--meta-gender-column", "face_gender", "--capture", "03",
    ]
    res = invoke(*args)
    counts = {12: "6 pairs (12 of 12 subjects", 82: "40 pairs (80 of 82 subjects"}
    assert f"wrote {counts[frll_set_subjects]}, strategy same-gender, seed 4)" in res.output
    assert f"to {tmp_path / 'p' / 'pairs.csv'}; protocol in {tmp_path / 'p' / 'pairs.csv.json'}" \
        in res.output
    first = (tmp_path / "p" / "pairs.csv").read_bytes()
    proto = json.loads((tmp_path / "p" / "pairs.csv.json").read_text())
    assert proto["protocol"] == "same-gender" and proto["seed"] == 4
    assert proto["dataset"]["params"]["meta_gender_column"] == "face_gender"
    invoke(*args)
    assert (tmp_path / "p" / "pairs.csv").read_bytes() == first  # reproducible
    rows = [r.split(",") for r in first.decode().splitlines()[1:]]
    assert all(r[5] == r[6] for r in rows)


def test_pairs_command_options(sample_dir: Path, tmp_path: Path):
    res = invoke("pairs", sample_dir / "neutral", "--pairs-file", tmp_path / "p.csv", "-n", 5,
                 "--per-subject", 2, "--pattern", r"(?P<subject>\d+)_(?P<capture>\d+)")
    assert "wrote 5 pairs" in res.output
    res = invoke("pairs", sample_dir, "--strategy", "nope", ok=False)
    assert res.exit_code == 2 and "'nope' is not one of 'random'" in res.output
    res = invoke("pairs", sample_dir, "--meta-id-column", "x", ok=False)
    assert res.exit_code == 2 and "need --metadata" in res.output


def test_library_errors_are_one_line(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    res = invoke("pairs", tmp_path / "empty", "-o", tmp_path / "p", ok=False)
    assert res.exit_code == 1
    assert res.output.startswith("Error: ") and "no image files found" in res.output
    assert "Traceback" not in res.output
    res = invoke("--debug", "pairs", tmp_path / "empty", ok=False)
    assert isinstance(res.exception, ValueError)  # --debug lets the traceback through
    res = invoke("pairs", tmp_path / "empty", "--pattern", "(?P<id>x)", ok=False)
    assert res.output == "Error: file-name pattern '(?P<id>x)' has no named group 'subject'; " \
        "write e.g. '^(?P<subject>\\d+)_(?P<capture>\\d+)'\n"


def test_generate_command(small: Path, tmp_path: Path):
    out = tmp_path / "set"
    res = invoke("generate", small, "-g", "avg-test", "-o", out, "--alpha", 0.25,
                 "--variant", "plain", "--variant", "inverted", "--param", "size=32",
                 "--seed", 3, "--no-progress")
    assert "6 pairs: 0 already done, 6 generated, 0 failed; 12 morphs" in res.output
    recs = load_manifest(out)
    assert recs[0]["params"]["alpha"] == 0.25 and recs[0]["params"]["size"] == 32
    assert recs[0]["params"]["variants"] == ["plain", "inverted"] and recs[0]["run_seed"] == 3
    assert read_image(recs[0]["path"]).shape == (32, 32, 3)
    # same command again: nothing to do
    res = invoke("generate", small, "-g", "avg-test", "-o", out, "--alpha", 0.25,
                 "--variant", "plain", "--variant", "inverted", "--param", "size=32",
                 "--seed", 3, "--no-progress", "--resume")
    assert "6 already done, 0 generated" in res.output
    # other parameters: refused, then replaced with --overwrite
    res = invoke("generate", small, "-g", "avg-test", "-o", out, "--no-progress", ok=False)
    assert res.exit_code == 1 and res.output.startswith("Error: ")
    assert "different configuration" in res.output and "params.alpha: 0.25 → 0.5" in res.output
    res = invoke("generate", small, "-g", "avg-test", "-o", out, "--no-progress", "--overwrite",
                 "--format", "jpg")
    assert "6 generated" in res.output
    assert sorted(p.suffix for p in out.iterdir() if p.suffix in (".png", ".jpg")) == [".jpg"] * 6


def test_generate_failures_and_errors(small: Path, tmp_path: Path):
    victim = small.read_text().splitlines()[1].split(",")[1]
    res = invoke("generate", small, "-g", "avg-test", "-o", tmp_path / "f", "--no-progress",
                 "--param", f'fail_subjects=["{victim}"]')
    assert res.exit_code == 0 and "4 generated, 2 failed" in res.output
    assert "failed: pair 0001: NoFaceError:" in res.output
    for args, needle in [
        (["-g", "no-such-gen"], "unknown generator 'no-such-gen'; valid names:"),
        (["--param", "nope=1"], "bad parameters"),
        (["--resume", "--overwrite"], "exclude each other"),
        (["--param", "alpha=0.1", "--alpha", "0.2"], "also set by a convenience option"),
        (["--param", "size"], "expected KEY=VALUE"),
    ]:
        res = invoke("generate", small, "-o", tmp_path / "x", "--no-progress",
                     *(["-g", "avg-test"] if "-g" not in args else []), *args, ok=False)
        assert res.exit_code != 0 and needle in res.output, res.output
        assert "Traceback" not in res.output


def test_generate_bad_pairs_file(small: Path, tmp_path: Path):
    bad = tmp_path / "pairs.csv"
    bad.write_text("pair_id,subject_a,image_a,subject_b,image_b\n1,a,../../etc/passwd,b,x.png\n")
    res = invoke("generate", bad, "-g", "avg-test", "-o", tmp_path / "o", ok=False)
    assert res.exit_code == 1 and "line 2: image_a '../../etc/passwd' points outside" in res.output


def test_parse_param():
    assert parse_param("a=0.3") == ("a", 0.3)
    assert parse_param("use-cache=true") == ("use_cache", True)
    assert parse_param("v=[1, 2]") == ("v", [1, 2])
    assert parse_param("name=dlib") == ("name", "dlib")
    assert parse_param("path=") == ("path", "")


def test_generator_params_mapping():
    class ShapeTexture:
        def __init__(self, *, shape_alpha=0.5, texture_alpha=0.5, variant="complete"):
            pass

    assert generator_params(ShapeTexture, alpha=0.3) == {"shape_alpha": 0.3, "texture_alpha": 0.3}
    assert generator_params(ShapeTexture, alpha=0.3, texture_alpha=0.6) == {
        "shape_alpha": 0.3, "texture_alpha": 0.6,
    }
    assert generator_params(ShapeTexture, variants=("spliced",)) == {"variant": "spliced"}
    assert generator_params(ShapeTexture) == {}  # nothing given: the generator's defaults


def test_list(testgens):
    out = invoke("list").output
    assert "generators (morphlab.generators):" in out
    assert "avg-test" in out and "[tests]" in out
    assert "face backends (morphlab.face):" in out and "dlib" in out
    assert "pair strategies" in out and "same-gender" in out


def test_demo_calls_run_demo(tmp_path: Path, monkeypatch):
    calls = []
    fake = types.ModuleType("morphlab.demo")
    fake.run_demo = lambda out_dir: calls.append(out_dir) or Path(out_dir) / "report.md"
    monkeypatch.setitem(sys.modules, "morphlab.demo", fake)
    res = invoke("demo", "-o", tmp_path / "d")
    assert calls == [str(tmp_path / "d")] and "report.md" in res.output
    invoke("demo")
    assert calls[-1] == "demo_out"
    from morphlab.cli import _conventions

    monkeypatch.setattr(_conventions, "_WARNED", set())
    res = invoke("demo", "--out-dir", tmp_path / "old")  # the old spelling: works, warns
    assert calls[-1] == str(tmp_path / "old")
    assert res.output.startswith("Warning: --out-dir is deprecated") and "use -o/--out" in res.output


# ----------------------------------------------------------------------------------------
# resumability: kill -9 a run mid-way, re-run, compare with an uninterrupted run
# ----------------------------------------------------------------------------------------
GEN_ARGS = ["-g", "avg-test", "--variant", "plain", "--variant", "inverted",
            "--param", "delay=0.25", "--no-progress"]


def _snapshot(out: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(out.iterdir()) if not f.name.startswith(".")}


def test_killed_run_resumes_to_the_same_result(small: Path, tmp_path: Path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTGENS), env.get("PYTHONPATH")]))
    out = tmp_path / "killed"
    cmd = [sys.executable, "-c", "import runner_testgens; from morphlab.cli import main; main()",
           "generate", str(small), "-o", str(out), *GEN_ARGS]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    man = out / MANIFEST_NAME
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if man.is_file() and man.read_bytes().count(b"\n") >= 4:  # 2 pairs done
                break
            time.sleep(0.01)
        assert proc.poll() is None, proc.communicate()[0].decode()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stdout.close()
    # the killed run's state: every manifest line has its image, every image is whole
    lines = [json.loads(x) for x in man.read_text().splitlines()]
    assert 4 <= len(lines) < 12
    for rec in lines:
        assert sha256_file(out / rec["file"]) == rec["sha256"]
    for png in out.glob("*.png"):
        read_image(png)
    # re-run: the same command finishes the set
    res = invoke("generate", small, "-o", out, *GEN_ARGS)
    done = len(lines) // 2
    assert f"6 pairs: {done} already done, {6 - done} generated, 0 failed; 12 morphs" in res.output
    ref = tmp_path / "uninterrupted"
    invoke("generate", small, "-o", ref, *GEN_ARGS)
    assert _snapshot(out) == _snapshot(ref)  # same files, same bytes, same manifest lines
    assert not list(out.glob(".*.tmp"))


# ----------------------------------------------------------------------------------------
# end to end with the real landmark generator
# ----------------------------------------------------------------------------------------
def test_landmark_end_to_end(sample_dir: Path, tmp_path: Path):
    """Real photos (embedded FRLL sample, 300 px), dlib landmarks, both variants, -j 1 and 2."""
    import cv2

    from morphlab.io import write_image

    data = tmp_path / "data"
    for sid in ("002", "003", "007"):
        img = read_image(sample_dir / "neutral" / f"{sid}_03.jpg")
        write_image(data / f"{sid}_03.png", cv2.resize(img, (300, 300), interpolation=cv2.INTER_AREA))
    write_image(data / "999_03.png", np.full((300, 300, 3), 200, np.uint8))  # no face
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        "pair_id,subject_a,image_a,subject_b,image_b\n"
        "1,002,002_03.png,003,003_03.png\n"
        "2,007,007_03.png,999,999_03.png\n"
        "3,003,003_03.png,007,007_03.png\n"
    )
    args = ["-g", "landmark", "--variant", "complete", "--variant", "spliced", "--alpha", 0.5,
            "--param", "size=160", "--dataset-dir", data, "--no-progress"]
    res = invoke("generate", pairs, "-o", tmp_path / "j1", *args)
    assert "3 pairs: 0 already done, 2 generated, 1 failed; 4 morphs" in res.output
    recs = load_manifest(tmp_path / "j1", include_failed=True)
    assert [(r["pair_id"], r["status"], r.get("tag")) for r in recs] == [
        ("1", "ok", "complete"), ("1", "ok", "spliced"), ("2", "failed", None),
        ("3", "ok", "complete"), ("3", "ok", "spliced"),
    ]
    assert recs[2]["error"].startswith("NoFaceError: ") and "999_03.png" in recs[2]["error"]
    for r in (recs[0], recs[1], recs[3], recs[4]):
        assert r["generator"] == "landmark" and r["landmark_backend"] == "dlib"
        assert r["params"]["shape_alpha"] == r["params"]["texture_alpha"] == 0.5
        assert r["params"]["variant"] == r["tag"]
        assert read_image(r["path"]).shape == (160, 160, 3)
    complete, spliced = (read_image(r["path"]) for r in recs[:2])
    assert complete.std() > 10 and not np.array_equal(complete, spliced)
    res = invoke("generate", pairs, "-o", tmp_path / "j2", *args, "-j", 2)
    assert "2 generated, 1 failed" in res.output
    assert _snapshot(tmp_path / "j1") == _snapshot(tmp_path / "j2")


def test_pairs_similar_with_chosen_system(sample_dir: Path, tmp_path: Path):
    out = tmp_path / "pairs.csv"
    args = ["pairs", str(sample_dir / "neutral"), "-o", str(tmp_path), "--strategy", "similar",
            "--fr", "lbph", "--metadata", str(sample_dir / "london_info.csv"),
            "--meta-id-column", "face_id", "--per-subject", "1"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    side = json.loads((tmp_path / "pairs.csv.json").read_text())
    assert side["protocol"] == "similar" and side["parameters"]["system"] == "lbph"
    assert "jobs" not in side["parameters"]  # how fast is no protocol parameter
    rows = out.read_text().splitlines()[1:]
    assert len(rows) == 6 and all(r.split(",")[5] == r.split(",")[6] for r in rows)  # same gender
    # -j 2: the same pairs, the same protocol file, byte for byte
    before = out.read_bytes(), (tmp_path / "pairs.csv.json").read_bytes()
    j2 = args[:2] + ["--pairs-file", str(tmp_path / "j2.csv")] + args[4:] + ["-j", "2"]
    res = CliRunner().invoke(main, j2)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "j2.csv").read_bytes() == before[0]
    assert json.loads((tmp_path / "j2.csv.json").read_text()) == json.loads(before[1])
    res = CliRunner().invoke(main, args[:-2] + ["--strategy", "random"])
    assert res.exit_code != 0 and "--fr" in res.output


def test_list_shows_loaders_and_operators():
    res = CliRunner().invoke(main, ["list"])
    assert res.exit_code == 0, res.output
    for name in ("frll", "fei", "onot", "print-scan", "jpeg", "landmark", "dlib-resnet", "lbp-svm"):
        assert name in res.output


def test_pairs_file_is_not_silently_replaced(sample_dir: Path, tmp_path: Path):
    out = tmp_path / "pairs.csv"
    base = ["pairs", str(sample_dir / "neutral"), "-o", str(tmp_path)]
    assert CliRunner().invoke(main, base + ["--seed", "1"]).exit_code == 0
    before = out.read_bytes()
    # the same settings again: allowed (same bytes)
    assert CliRunner().invoke(main, base + ["--seed", "1"]).exit_code == 0
    assert out.read_bytes() == before
    # other settings: refused, file untouched
    res = CliRunner().invoke(main, base + ["--seed", "2"])
    assert res.exit_code != 0 and "--overwrite" in res.output
    assert out.read_bytes() == before
    res = CliRunner().invoke(main, base + ["--seed", "2", "--overwrite"])
    assert res.exit_code == 0 and out.read_bytes() != before


def test_pairs_overwrite_never_replaces_a_file_morphlab_did_not_write(sample_dir: Path,
                                                                      tmp_path: Path):
    """--overwrite replaces a pairs file morphlab wrote, never the user's own pairs.csv (or
    one edited since morphlab wrote it)."""
    mine = tmp_path / "pairs.csv"
    mine.write_text("pair_id,subject_a,image_a,subject_b,image_b\n")
    base = ["pairs", str(sample_dir / "neutral"), "-o", str(tmp_path), "--overwrite"]
    res = CliRunner().invoke(main, base)
    assert res.exit_code == 1 and "pairs.csv" in res.output, res.output
    assert mine.read_text() == "pair_id,subject_a,image_a,subject_b,image_b\n"
    assert not (tmp_path / "pairs.csv.json").exists()
    mine.unlink()
    assert CliRunner().invoke(main, base).exit_code == 0  # now morphlab's own
    assert CliRunner().invoke(main, base + ["--seed", "3"]).exit_code == 0  # replaced
    with open(mine, "a") as fh:
        fh.write("# my note\n")  # edited by hand: no longer what morphlab wrote
    res = CliRunner().invoke(main, base + ["--seed", "4"])
    assert res.exit_code == 1 and mine.read_text().endswith("# my note\n")


def test_generate_alpha_accepts_auto_and_numbers():
    from morphlab.cli.generate import _AlphaType
    from morphlab.generators.landmark import LandmarkMorph

    t = _AlphaType()
    assert t.convert("auto", None, None) == "auto" and t.convert("0.4", None, None) == 0.4
    with pytest.raises(click.BadParameter, match="neither a number nor 'auto'"):
        t.convert("half", None, None)
    assert generator_params(LandmarkMorph, alpha="auto")["alpha"] == "auto"
