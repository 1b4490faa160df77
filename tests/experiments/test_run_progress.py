"""``morphlab run`` for newcomers: reduced runs in their own folder, a line per stage,
progress bars named after their stage, each warning once, a summary line."""

from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from morphlab.cli import main
from morphlab.experiments import LIMIT_ENV, ExperimentConfig, run_experiment
from morphlab.experiments.runner import _Run, stage_label


def _config(folder: Path, root: Path, **extra) -> Path:
    """A small real experiment: 3 pairs (n_pairs, not limit_pairs: a *full* run), one
    landmark variant, an as-generated and a JPEG protocol, no MAP, no detection."""
    cfg = {
        "name": "tiny", "dataset": {"loader": "frll", "root": str(root)},
        "pairs": {"n_pairs": 3},
        "generators": [{"name": "landmark", "params": {"variants": ["complete"]}}],
        "postprocess": [{"name": "digital", "ops": []}, {"name": "jpeg", "ops": ["jpeg:q=80"]}],
        "map": {"enabled": False}, "detection": {"enabled": False}, **extra,
    }
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``folder``: its sha256 and mtime (bookkeeping files included)."""
    return {p.relative_to(folder).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                               p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _pairs(folder: Path) -> int:
    return len((folder / "pairs/pairs.csv").read_text().splitlines()) - 1


STAGES = ["dataset", "pairs", "generate/landmark", "postprocess/jpeg/landmark",
          "postprocess/jpeg/bona-fide"]
LINES = ["[1/5] dataset", "[2/5] pairs", "[3/5] generate: landmark",
         "[4/5] postprocess: landmark × jpeg", "[5/5] postprocess: bona fide × jpeg"]


def test_a_reduced_run_never_touches_the_full_run(sample_dir: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(LIMIT_ENV, raising=False)
    cfg = _config(tmp_path, sample_dir)
    full = run_experiment(cfg, progress=False)
    assert full.out_dir == Path("runs/tiny") and full.limit_pairs is None
    before = _snapshot(tmp_path / "runs/tiny")
    assert _pairs(tmp_path / "runs/tiny") == 3

    # --limit-pairs and the environment variable: the same folder of its own
    cli = CliRunner().invoke(main, ["run", str(cfg), "--limit-pairs", "1", "--no-progress"])
    assert cli.exit_code == 0, cli.output
    reduced = tmp_path / "runs/tiny-limit1"
    assert _pairs(reduced) == 1
    assert "reduced run (at most 1 pairs); report: runs/tiny-limit1/report.md" in cli.output
    monkeypatch.setenv(LIMIT_ENV, "1")
    again = run_experiment(cfg, progress=False)
    assert again.out_dir == Path("runs/tiny-limit1") and again.ran() == []
    assert _snapshot(tmp_path / "runs/tiny") == before  # not a byte, not an mtime

    report = (reduced / "report.md").read_text()
    assert report.startswith("# Experiment tiny (reduced run: at most 1 pairs)")
    assert "Reduced run: at most 1 pairs" in report
    assert "educed run" not in (tmp_path / "runs/tiny/report.md").read_text()

    # pointed at the full run's folder, a reduced run is refused before it writes anything
    monkeypatch.delenv(LIMIT_ENV)
    cli = CliRunner().invoke(main, ["run", str(cfg), "--limit-pairs", "2", "-o", "runs/tiny",
                                    "--no-progress"])
    assert cli.exit_code == 1
    assert "runs/tiny: holds the full run of tiny; a reduced run (limit_pairs 2)" in cli.output
    assert "a reduced run's folder is runs/tiny-limit2" in cli.output
    assert _snapshot(tmp_path / "runs/tiny") == before
    assert not (tmp_path / "runs/tiny-limit2").exists()
    check = CliRunner().invoke(main, ["run", str(cfg), "--check", "--limit-pairs", "2"])
    assert check.exit_code == 0 and check.output.rstrip().endswith("output in runs/tiny-limit2")
    # the full run again: cached, its folder as it was (bookkeeping aside)
    assert run_experiment(cfg, progress=False).ran() == []


def test_output_folders_of_full_and_reduced_runs():
    base = {"name": "frll_landmark", "dataset": {"loader": "frll", "root": "data"},
            "generators": [{"name": "landmark"}]}
    cfg = ExperimentConfig.from_dict(base)
    assert cfg.out_dir() == Path("runs/frll_landmark")
    assert cfg.effective(4).out_dir() == Path("runs/frll_landmark-limit4")
    own = ExperimentConfig.from_dict({**base, "output_dir": "/data/study/", "limit_pairs": 2})
    assert own.out_dir() == Path("/data/study-limit2")
    assert own.effective(7).limit_pairs == 7  # --limit-pairs wins over the configuration


def test_one_line_per_stage_and_named_bars(sample_dir: Path, tmp_path: Path, monkeypatch):
    from tqdm import std

    monkeypatch.delenv(LIMIT_ENV, raising=False)
    cfg, out = _config(tmp_path, sample_dir, limit_pairs=1), tmp_path / "run"
    init = std.tqdm.__dict__["__init__"]
    first = CliRunner().invoke(main, ["run", str(cfg), "-o", str(out)])
    assert first.exit_code == 0, first.output
    lines = first.stdout.splitlines()
    assert lines[:-1] == LINES
    assert lines[-1].startswith("5 stage(s) ran, 0 cached, ") and f"report: {out}/report.md" in lines[-1]
    # each bar carries its stage's label; tqdm is itself again after the run
    assert "generate: landmark · " in first.stderr
    assert "postprocess: bona fide × jpeg · " in first.stderr
    assert std.tqdm.__dict__["__init__"] is init

    second = CliRunner().invoke(main, ["run", str(cfg), "-o", str(out), "--no-progress"])
    assert second.exit_code == 0, second.output
    assert second.stdout.splitlines()[:-1] == [f"{line} (cached)" for line in LINES]
    assert "0 stage(s) ran, 5 cached" in second.stdout
    assert "%|" not in second.stderr  # --no-progress: no bar


def test_the_plan_numbers_every_stage_kind():
    cfg = ExperimentConfig.from_dict({
        "name": "x", "dataset": {"loader": "frll", "root": "data"},
        "generators": [{"name": "landmark"}, {"name": "feather", "generator": "landmark"}],
        "postprocess": [{"name": "digital", "ops": []}, {"name": "print-scan", "ops": ["print-scan"]}],
        "map": {"protocols": ["print-scan"]},
        "detection": {"detectors": [{"name": "lbp-svm"}]},
    })
    plan = _Run(cfg, Path("."), Path("out"), None, False).plan()
    assert [stage_label(n) for n in plan] == [
        "dataset", "pairs", "generate: landmark", "generate: feather",
        "postprocess: landmark × print-scan", "postprocess: feather × print-scan",
        "postprocess: bona fide × print-scan", "map: landmark × print-scan",
        "map: feather × print-scan", "detect: lbp-svm × digital", "detect: lbp-svm × print-scan",
    ]


def test_a_warning_raised_many_times_shows_once(sample_dir: Path, tmp_path: Path, monkeypatch,
                                               caplog):
    import morphlab.datasets.pairs as pairs_mod

    real = pairs_mod.make_pairs
    noisy_log = logging.getLogger("morphlab.test_noisy")

    def noisy(*args, **kwargs):
        for _ in range(5):  # what six MAP stages did with their calibration warning
            warnings.warn("only 24 impostor comparisons to calibrate", UserWarning)
            noisy_log.warning("metadata lists 82 subjects the folder lacks")
        warnings.warn("another warning", UserWarning)
        return real(*args, **kwargs)

    monkeypatch.setattr(pairs_mod, "make_pairs", noisy)
    monkeypatch.delenv(LIMIT_ENV, raising=False)
    cfg = _config(tmp_path, sample_dir, limit_pairs=1,
                  postprocess=[{"name": "digital", "ops": []}])
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")  # Python itself would show all five
        res = run_experiment(cfg, out_dir=tmp_path / "run", progress=False)
    texts = [str(w.message) for w in shown]
    assert texts.count("only 24 impostor comparisons to calibrate") == 1
    assert texts.count("another warning") == 1
    assert res.warnings == {
        "UserWarning: only 24 impostor comparisons to calibrate": 5,
        "UserWarning: another warning": 1,
        "warning morphlab.test_noisy: metadata lists 82 subjects the folder lacks": 5,
    }
    logged = [r for r in caplog.records if r.name == "morphlab.test_noisy"]
    assert len(logged) == 1
    # after the run, warnings are Python's again
    with warnings.catch_warnings(record=True) as after:
        warnings.simplefilter("always")
        for _ in range(2):
            warnings.warn("only 24 impostor comparisons to calibrate", UserWarning)
    assert len(after) == 2

    # the command line: one "Warning:" line each, and the summary counts them
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        cli = CliRunner().invoke(main, ["run", str(cfg), "-o", str(tmp_path / "run2"),
                                        "--no-progress"])
    assert cli.exit_code == 0, cli.output
    assert cli.stderr.count("Warning: only 24 impostor comparisons to calibrate") == 1
    assert "3 distinct warning(s) shown once (11 raised)" in cli.stdout


@pytest.mark.parametrize("name, label", [
    ("map/print-scan/landmark", "map: landmark × print-scan"),
    ("postprocess/jpeg/bona-fide", "postprocess: bona fide × jpeg"),
    ("detect/digital/lbp-svm", "detect: lbp-svm × digital"),
    ("generate/landmark-feather", "generate: landmark-feather"),
    ("pairs", "pairs"),
])
def test_stage_labels(name: str, label: str):
    assert stage_label(name) == label
