"""``morphlab run`` never loses the user's data: content keys, disjoint output, lock, YAML."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from morphlab.cli import main
from morphlab.experiments import ConfigError, load_config, run_experiment
from morphlab.experiments.stages import StageFolderError
from morphlab.outdir import locked_folder

STAGES = ["dataset", "pairs", "generate/landmark"]


def _config(tmp_path: Path, root: Path, **extra) -> Path:
    """The smallest real experiment: 2 pairs, one landmark variant, no MAP, no detection."""
    cfg = {
        "name": "tiny", "dataset": {"loader": "frll", "root": str(root)}, "limit_pairs": 2,
        "generators": [{"name": "landmark", "params": {"variants": ["complete"]}}],
        "postprocess": [{"name": "digital", "ops": []}],
        "map": {"enabled": False}, "detection": {"enabled": False}, **extra,
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture()
def data(sample_dir: Path, tmp_path: Path) -> Path:
    """A copy of the embedded FRLL sample (the tests touch and change its photos)."""
    return Path(shutil.copytree(sample_dir, tmp_path / "frll"))


def test_touching_photos_reruns_nothing_and_a_changed_byte_reruns(data: Path, tmp_path: Path):
    cfg, out = _config(tmp_path, data), tmp_path / "run"
    first = run_experiment(cfg, out_dir=out, progress=False)
    assert first.ran() == STAGES
    photos = sorted(data.rglob("*.jpg"))
    for p in photos:  # touch / cp -r / rsync without -t: new mtimes, same bytes
        os.utime(p, ns=(p.stat().st_mtime_ns + 10**9,) * 2)
    again = run_experiment(cfg, out_dir=out, progress=False)
    assert again.ran() == [] and again.cached() == STAGES

    with photos[0].open("ab") as fh:  # one byte more in one photo
        fh.write(b"\0")
    third = run_experiment(cfg, out_dir=out, progress=False)
    assert third.ran() == STAGES
    assert [s.result for s in third.stages] == [s.result for s in first.stages]


def test_user_files_in_a_stage_folder_are_never_deleted(data: Path, tmp_path: Path):
    cfg, out = _config(tmp_path, data), tmp_path / "run"
    run_experiment(cfg, out_dir=out, progress=False)
    mine = out / "pairs" / "my-pairs.csv"
    mine.write_text("subject A,subject B\n")
    with pytest.raises(StageFolderError, match=r"pairs: stage pairs must be redone.*: my-pairs.csv; "
                                               r"nothing was deleted"):
        run_experiment(cfg, out_dir=out, overrides=["pairs.seed=5"], progress=False)
    assert mine.read_text() == "subject A,subject B\n" and (out / "pairs/pairs.csv").is_file()
    cli = CliRunner().invoke(main, ["run", str(cfg), "-o", str(out), "--no-progress",
                                    "--set", "pairs.seed=5"])
    assert cli.exit_code == 1 and "Error: " in cli.output and "my-pairs.csv" in cli.output

    mine.unlink()  # moved away: the stages morphlab wrote are cleaned and re-run
    res = run_experiment(cfg, out_dir=out, overrides=["pairs.seed=5"], progress=False)
    assert res.ran() == ["pairs", "generate/landmark"]

    (out / "report.md").write_text("# my own report\n")  # edited: no longer morphlab's
    with pytest.raises(StageFolderError, match=r"refusing to replace report.md"):
        run_experiment(cfg, out_dir=out, overrides=["pairs.seed=5"], progress=False)
    assert (out / "report.md").read_text() == "# my own report\n"


@pytest.mark.parametrize("where, relation", [
    (".", "is the dataset folder"), ("neutral/out", "lies inside the dataset folder"),
    ("..", "contains the dataset folder"),
])
def test_an_output_folder_overlapping_the_dataset_is_refused(data: Path, tmp_path: Path,
                                                             where: str, relation: str):
    cfg = _config(tmp_path, data)
    out = (data / where).resolve()
    before = sorted(data.rglob("*"))
    with pytest.raises(ValueError, match=relation):
        run_experiment(cfg, out_dir=out, progress=False)
    assert sorted(data.rglob("*")) == before


def test_a_second_run_on_the_same_folder_is_refused(data: Path, tmp_path: Path):
    cfg, out = _config(tmp_path, data), tmp_path / "run"
    with locked_folder(out):  # another `morphlab run` holds the folder
        proc = subprocess.run(
            [sys.executable, "-m", "morphlab.cli", "run", str(cfg), "-o", str(out), "--no-progress"],
            capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1, proc.stderr
    assert f"another morphlab process is writing this folder (pid {os.getpid()}" in proc.stderr
    assert not (out / "stages").exists()


BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_yaml_aliases_are_refused_before_expansion(tmp_path: Path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)  # ~500 bytes, 9**9 strings if expanded
    with pytest.raises(ConfigError, match=r"bomb.yaml, line 2: YAML alias \*a refused"):
        load_config(bomb)
    with pytest.raises(ConfigError, match=r"override 'seed=\*x', line 1: YAML alias \*x refused"):
        load_config(_config(tmp_path, tmp_path), overrides=["seed=*x"])
    cli = CliRunner().invoke(main, ["run", str(bomb), "--check"])
    assert cli.exit_code == 1 and "YAML alias *a refused" in cli.output


@pytest.mark.parametrize("override, message", [
    ("generators.0.params.alpha=7", r"generators\[0\].params \(generator 'landmark'\): alpha must be in \[0, 1\], got 7"),
    ("generators.0.params.variants=[complete, morphed]", r"generators\[0\].params.*morphed"),
    ("map.target_fmr=2", r"map: target_fmr: must be in \(0, 1\)"),
    ("pairs.per_subject=-1", r"pairs: per_subject: must be >= 1"),
    ("map.backend=opencv", r"map: backend: unknown face backend 'opencv'"),
    ("map.systems=[lbph=/no/such/model.yml]", r"map.systems\[0\]: lbph model /no/such/model.yml not found"),
    ("detection={enabled: true, detectors: [{name: lbp-svm, params: {C: big}}]}",
     r"detection.detectors\[0\].params: parameter 'C' = \"big\" does not fit 'lbp-svm' \(expected float\)"),
])
def test_check_validates_parameter_values(sample_dir: Path, tmp_path: Path, override: str,
                                          message: str):
    cfg = _config(tmp_path, sample_dir)
    ok = CliRunner().invoke(main, ["run", str(cfg), "--check"])
    assert ok.exit_code == 0 and "valid" in ok.output, ok.output
    cli = CliRunner().invoke(main, ["run", str(cfg), "--check", "--set", override])
    assert cli.exit_code == 1, cli.output
    assert cli.output.startswith(f"Error: {cfg}: ")
    assert re.search(message, cli.output), cli.output
