"""Experiment configurations (round trip, validation) and a tiny end-to-end cached run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from morphlab.experiments import (
    LIMIT_ENV,
    ConfigError,
    ExperimentConfig,
    apply_overrides,
    load_config,
    run_experiment,
)
from morphlab.experiments.runner import stage_label

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
SHIPPED = ("frll_landmark", "fei_arc2morph", "onot_arc2morph")


def _minimal() -> dict:
    return {
        "name": "tiny",
        "dataset": {"loader": "frll", "root": "data"},
        "generators": [{"name": "landmark"}],
    }


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_validate_and_round_trip(name: str):
    cfg = load_config(EXPERIMENTS / f"{name}.yaml")
    assert cfg.name == name
    d = cfg.to_dict()
    assert yaml.safe_load(yaml.safe_dump(d)) == d  # plain data
    assert ExperimentConfig.from_dict(d) == cfg
    assert ExperimentConfig.from_yaml(cfg.to_yaml()) == cfg
    assert ExperimentConfig.from_dict(ExperimentConfig.from_dict(d).to_dict()).to_dict() == d
    if name != "frll_landmark":
        assert [g.generator for g in cfg.generators] == ["landmark", "arc2face"]
        assert cfg.generators[1].params["weights"] == "${ARC2FACE_WEIGHTS}"  # kept unexpanded


def test_defaults_are_written_out():
    cfg = ExperimentConfig.from_dict(_minimal())
    d = cfg.to_dict()
    assert list(d) == ["name", "dataset", "generators", "description", "seed", "output_dir",
                       "limit_pairs", "jobs", "pairs", "postprocess", "map", "detection"]
    assert d["generators"] == [{"name": "landmark", "generator": "landmark", "params": {},
                                "image_format": "png"}]
    assert d["postprocess"] == [{"name": "digital", "ops": []}]
    assert d["detection"]["detectors"][0]["detector"] == "lbp-svm"
    assert cfg.out_dir() == Path("runs/tiny")


def _set(d: dict, dotted: str, value) -> dict:
    return apply_overrides(d, [f"{dotted}={json.dumps(value)}"])


@pytest.mark.parametrize("key, value, message", [
    ("colour", 1, r"unknown key\(s\) 'colour'; valid keys: name, dataset, generators, description"),
    ("pairs.n_pair", 3, r"^pairs: unknown key\(s\) 'n_pair'; valid keys: strategy, per_subject, n_pairs"),
    ("seed", "zero", r"^seed: expected an integer, got str 'zero'"),
    ("seed", True, r"^seed: expected an integer, got bool True"),
    ("map.target_fmr", "0.1%", r"^map.target_fmr: expected a number"),
    ("map.systems", "lbph", r"^map.systems: expected a list"),
    ("generators", {"name": "landmark"}, r"^generators: expected a list"),
    ("generators", [], r"generators: at least one generator"),
    ("generators.0.params", [1], r"^generators\[0\].params: expected a mapping"),
    ("generators.0.generator", "morphmaker", r"^generators\[0\]: generator: unknown generator "
                                             r"'morphmaker'; valid: .*arc2face.*landmark"),
    ("generators.0.params", {"alpah": 0.5}, r"^generators\[0\]: params: generator 'landmark' has no "
                                            r"parameter\(s\) alpah; valid: alpha, shape_alpha"),
    ("generators.0.name", "a b", r"^generators\[0\]: name 'a b' must be file-name safe"),
    ("dataset.loader", "lfw", r"^dataset: loader: unknown dataset loader 'lfw'; valid names: fei, folder"),
    ("dataset.params", {"colour": 1}, r"^dataset: params: dataset loader 'frll' has no parameter\(s\) "
                                      r"colour; valid: layout, probes"),
    ("dataset", {"loader": "frll"}, r"^dataset: missing required key\(s\) root"),
    ("pairs.strategy", "nearest", r"^pairs: strategy: unknown pair strategy 'nearest'; valid: random"),
    ("pairs.options", {"k": 1}, r"^pairs: options: pair strategy 'random' has no parameter\(s\) k"),
    ("postprocess", [{"name": "p", "ops": ["jpeg:q=200"]}], r"^postprocess\[0\]: ops\[0\]: jpeg: q must be in"),
    ("postprocess", [{"name": "p", "ops": ["sharpen"]}], r"postprocess\[0\]: ops\[0\]: unknown post-processing operator"),
    ("postprocess", [{"name": "p"}, {"name": "p"}], r"postprocess names must be unique; repeated: p"),
    ("map.systems", ["nosuch-fr"], r"^map: systems\[0\]: unknown recognition system 'nosuch-fr'; valid: .*dlib-resnet"),
    ("map.protocols", ["print"], r"map.protocols: unknown protocol\(s\) print; defined: digital"),
    ("detection.detectors", [{"name": "x", "detector": "svm"}],
     r"^detection.detectors\[0\]: detector: unknown detector 'svm'; valid: .*lbp-svm"),
    ("detection.detectors", [{"name": "lbp-svm", "params": {"c": 1}}],
     r"detector 'lbp-svm' has no parameter\(s\) c; valid: size, grid"),
    ("detection.test_fraction", 1.5, r"^detection: test_fraction: must be in \(0, 1\)"),
    ("limit_pairs", 0, r"^limit_pairs: must be >= 1 or null"),
])
def test_validation_errors_name_the_key(key: str, value, message: str):
    with pytest.raises(ConfigError, match=message):
        ExperimentConfig.from_dict(_set(_minimal(), key, value))


def test_missing_keys_and_bad_files(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"missing required key\(s\) dataset, generators"):
        ExperimentConfig.from_dict({"name": "x"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="bad.yaml: expected a mapping"):
        load_config(bad)
    bad.write_text(yaml.safe_dump({**_minimal(), "jobs": 0}))
    with pytest.raises(ConfigError, match=r"bad.yaml: jobs: must be >= 1"):
        load_config(bad)
    with pytest.raises(FileNotFoundError, match="experiment configuration not found"):
        load_config(tmp_path / "nope.yaml")


def test_missing_paths_and_variables(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("ARC2FACE_WEIGHTS", raising=False)
    cfg = load_config(EXPERIMENTS / "fei_arc2morph.yaml")
    with pytest.raises(FileNotFoundError, match=r"dataset.root: .*shared/data/fei not found"):
        cfg.check_paths(EXPERIMENTS)
    (tmp_path / "fei").mkdir()
    cfg = load_config(EXPERIMENTS / "fei_arc2morph.yaml", overrides=[f"dataset.root={tmp_path / 'fei'}"])
    with pytest.raises(ConfigError, match=r"generators\[1\].params.weights: environment variable "
                                          r"ARC2FACE_WEIGHTS is not set"):
        cfg.check_paths(EXPERIMENTS)
    monkeypatch.setenv("ARC2FACE_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("ARCFACE_ONNX", str(tmp_path / "arcface.onnx"))
    cfg.check_paths(EXPERIMENTS)  # everything present or set


def test_overrides_and_the_size_knob(monkeypatch):
    d = apply_overrides(_minimal(), ["limit_pairs=3", "generators.0.params.alpha=0.4",
                                     "pairs.strategy=same-gender", "postprocess=[{name: a, ops: [icao]}]"])
    cfg = ExperimentConfig.from_dict(d)
    assert cfg.limit_pairs == 3 and cfg.generators[0].params == {"alpha": 0.4}
    assert cfg.pairs.strategy == "same-gender" and cfg.postprocess[0].ops == ("icao",)
    for bad, msg in (("limit_pairs", "expected KEY=VALUE"), ("generators.5.name=x", "no item 5"),
                     ("name.x=1", "name is not a section")):
        with pytest.raises(ConfigError, match=msg):
            apply_overrides(_minimal(), [bad])
    monkeypatch.setenv(LIMIT_ENV, "2")
    assert cfg.effective().limit_pairs == 2
    monkeypatch.setenv(LIMIT_ENV, "two")
    with pytest.raises(ConfigError, match="MORPHLAB_LIMIT_PAIRS='two'"):
        cfg.effective()


@pytest.mark.filterwarnings("ignore:.*impostor comparisons.*to calibrate")
def test_tiny_experiment_end_to_end_and_cached(sample_dir: Path, tmp_path: Path, monkeypatch):
    """The shipped FRLL experiment, reduced: embedded sample, 3 pairs, two protocols."""
    from morphlab.generators.runner import load_manifest
    from morphlab.postprocess import load_set, source_chain

    monkeypatch.setenv(LIMIT_ENV, "3")  # the CI size knob
    overrides = [
        f"dataset.root={sample_dir}",
        "postprocess=[{name: digital, ops: [icao]}, {name: print-scan, ops: [icao, print-scan, 'jpeg:quality=90']}]",
        "map.systems=[dlib-resnet, lbph]",
        "detection.detectors=[{name: lbp-svm}]",
    ]
    out = tmp_path / "run"
    lines: list[str] = []
    res = run_experiment(EXPERIMENTS / "frll_landmark.yaml", out_dir=out, overrides=overrides,
                         progress=False, echo=lines.append)
    stages = [s.name for s in res.stages]
    assert lines[10] == "[11/16] map: landmark × digital" and len(lines) == 16
    assert lines == [f"[{i}/16] {stage_label(n)}" for i, n in enumerate(stages, 1)]
    assert stages == [
        "dataset", "pairs", "generate/landmark", "generate/landmark-feather",
        "postprocess/digital/landmark", "postprocess/digital/landmark-feather",
        "postprocess/digital/bona-fide", "postprocess/print-scan/landmark",
        "postprocess/print-scan/landmark-feather", "postprocess/print-scan/bona-fide",
        "map/digital/landmark", "map/digital/landmark-feather", "map/print-scan/landmark",
        "map/print-scan/landmark-feather", "detect/digital/lbp-svm", "detect/print-scan/lbp-svm",
    ]
    assert res.cached() == []
    r = {s.name: s.result for s in res.stages}
    assert r["pairs"]["pairs"] == 3 and r["dataset"]["subjects"] == 12
    assert r["generate/landmark"]["morphs"] == 6 and r["generate/landmark"]["failed"] == 0
    det = r["detect/print-scan/lbp-svm"]
    assert det["species"] == ["landmark/complete", "landmark/spliced", "landmark-feather/spliced"]
    assert len(det["deer"]) == 3 and all(len(row) == 3 for row in det["deer"])
    assert all(v is None or 0 <= v <= 1 for row in det["deer"] for v in row)
    assert r["map/digital/landmark"]["n_morphs"] == 6
    # the processed morphs chain back to the generated ones; bona fide images are processed alike
    morphs = load_manifest(out / "postprocess/print-scan/landmark")
    assert [source_chain(m)[0]["path"] for m in morphs] == [
        str(x["path"]) for x in load_manifest(out / "generate/landmark")]
    bf = load_set(out / "postprocess/print-scan/bona-fide")
    assert len(bf) == 6 and {b["role"] for b in bf} == {"enrolment"}
    assert bf[0]["postprocess"][0]["ops"] == morphs[0]["postprocess"][0]["ops"]
    report = (out / "report.md").read_text()
    assert "D-EER, lbp-svm, protocol print-scan" in report and "MinMax-MMPMR" in report
    assert (out / "report.html").is_file() and (out / "figures/examples.png").is_file()
    assert (out / "detect/digital/lbp-svm/deer.png").is_file()
    assert ExperimentConfig.from_yaml((out / "config.yaml").read_text()).limit_pairs == 3

    # nothing changed: every stage comes from the cache
    again = run_experiment(EXPERIMENTS / "frll_landmark.yaml", out_dir=out, overrides=overrides,
                           progress=False)
    assert again.ran() == [] and again.cached() == stages
    assert [s.result for s in again.stages] == [s.result for s in res.stages]

    # a MAP and a detection stage killed before they completed (the record is written
    # first, the outputs after, nothing recorded as morphlab's yet): both start again
    for stage, folder in (("map__digital__landmark", out / "map/digital/landmark"),
                          ("detect__digital__lbp-svm", out / "detect/digital/lbp-svm")):
        rec = out / "stages" / f"{stage}.json"
        rec.write_text(json.dumps({"key": json.loads(rec.read_text())["key"], "complete": False}))
        os.utime(rec, ns=(1, 1))  # the interrupted attempt began before its files
        for owned in folder.rglob(".morphlab-owned.json"):
            owned.unlink()
    resumed = run_experiment(EXPERIMENTS / "frll_landmark.yaml", out_dir=out, overrides=overrides,
                             progress=False)
    assert resumed.ran() == ["map/digital/landmark", "detect/digital/lbp-svm"]
    redone = resumed.stages[stages.index("map/digital/landmark")].result
    assert redone["per_system"] == r["map/digital/landmark"]["per_system"]

    # one protocol changed: only it and what reads it run again
    changed = overrides[:1] + [
        "postprocess=[{name: digital, ops: [icao]}, {name: print-scan, ops: [icao, print-scan, 'jpeg:quality=80']}]",
    ] + overrides[2:]
    third = run_experiment(EXPERIMENTS / "frll_landmark.yaml", out_dir=out, overrides=changed,
                           progress=False)
    assert third.ran() == [
        "postprocess/print-scan/landmark", "postprocess/print-scan/landmark-feather",
        "postprocess/print-scan/bona-fide", "map/print-scan/landmark",
        "map/print-scan/landmark-feather", "detect/print-scan/lbp-svm",
    ]
    assert "jpeg:quality=80" in load_manifest(out / "postprocess/print-scan/landmark")[0]["postprocess"][0]["ops"]

    # the command line, on the same folder: everything cached
    from click.testing import CliRunner

    from morphlab.cli import main

    args = ["run", str(EXPERIMENTS / "frll_landmark.yaml"), "-o", str(out), "--no-progress"]
    for o in changed:
        args += ["--set", o]
    cli = CliRunner().invoke(main, args)
    assert cli.exit_code == 0, cli.output
    assert "0 stage(s) ran, 16 cached" in cli.output


# ----------------------------------------------------------------------------------------
# morphlab run: -j/--seed as overrides, the old --out-dir
# ----------------------------------------------------------------------------------------
def _invoke_run(*args: str):
    from click.testing import CliRunner

    from morphlab.cli import main

    return CliRunner().invoke(main, ["run", str(EXPERIMENTS / "frll_landmark.yaml"), *args])


def test_run_jobs_and_seed_are_the_matching_overrides(monkeypatch, tmp_path: Path):
    import morphlab.experiments as experiments

    calls = []

    class _Done:
        def summary(self):
            return "done"

    def fake_run(config, **kwargs):
        calls.append(kwargs)
        return _Done()

    monkeypatch.setattr(experiments, "run_experiment", fake_run)
    res = _invoke_run("-j", "3", "--seed", "7", "--set", "limit_pairs=2", "-o", str(tmp_path))
    assert res.exit_code == 0, res.output
    assert calls[-1]["overrides"] == ("limit_pairs=2", "jobs=3", "seed=7")
    assert calls[-1]["out_dir"] == str(tmp_path)
    by_options = load_config(EXPERIMENTS / "frll_landmark.yaml", overrides=calls[-1]["overrides"])
    by_set = load_config(EXPERIMENTS / "frll_landmark.yaml",
                         overrides=["limit_pairs=2", "jobs=3", "seed=7"])
    assert by_options == by_set and (by_set.jobs, by_set.seed) == (3, 7)
    res = _invoke_run("--no-progress")
    assert res.exit_code == 0 and calls[-1]["overrides"] == ()  # no -j: the configuration's


@pytest.mark.parametrize("args,key", [(["-j", "2", "--set", "jobs=3"], "-j/--jobs"),
                                      (["--seed", "1", "--set", "seed=1"], "--seed")])
def test_run_option_and_set_of_one_key_is_a_usage_error(args, key):
    res = _invoke_run("--check", *args)
    assert res.exit_code == 2 and f"{key} and --set" in res.output and "only one" in res.output


def test_run_old_out_dir_still_works_and_warns(monkeypatch, tmp_path: Path):
    from morphlab.cli import _conventions

    monkeypatch.setattr(_conventions, "_WARNED", set())
    res = _invoke_run("--check", "--out-dir", str(tmp_path / "old"), "--set",
                      f"dataset.root={EXPERIMENTS}")
    assert "Warning: --out-dir is deprecated" in res.output and "use -o/--out" in res.output
    assert res.exit_code == 0, res.output
    assert f"output in {tmp_path / 'old'}" in res.output
