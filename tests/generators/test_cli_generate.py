"""``morphlab generate``'s spellings (issue 11 item 6): ``-o/--out``, ``--landmarks``,
``-p/--param``, ``--quality``, a pairs folder as PAIRS — and the old spellings still
working with one warning each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from runner_testgens import AverageGen, make_dataset, snapshot

from morphlab.cli import _conventions, main
from morphlab.datasets.folder import load_folder
from morphlab.datasets.pairs import PAIRS_FILE, make_pairs, write_pairs
from morphlab.generators.base import GENERATORS
from morphlab.generators.runner import load_manifest


class EchoLandmarksGen(AverageGen):
    """``avg-test`` with a ``landmarks`` parameter of its own default (not dlib)."""

    name = "landmarks-echo-test"

    def __init__(self, *, landmarks: str = "echo-default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.landmarks = landmarks

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "landmarks": self.landmarks}


GENERATORS.add("landmarks-echo-test", EchoLandmarksGen, origin="tests")


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    """Each deprecation warns once per process: start from none warned."""
    monkeypatch.setattr(_conventions, "_WARNED", set())


def cli(*args: Any):
    return CliRunner().invoke(main, ["generate", *map(str, args), "--no-progress"])


def _params(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())["params"]


def test_out_and_the_deprecated_out_dir(pairs_csv: Path, tmp_path: Path):
    new = cli(pairs_csv, "-g", "avg-test", "-o", tmp_path / "a")
    assert new.exit_code == 0, new.output
    assert "6 generated" in new.output and "Warning:" not in new.output
    old = cli(pairs_csv, "-g", "avg-test", "--out-dir", tmp_path / "b")
    assert old.exit_code == 0, old.output
    assert old.output.count("Warning: --out-dir is deprecated") == 1
    assert "use -o/--out" in old.output
    a, b = snapshot(tmp_path / "a"), snapshot(tmp_path / "b")
    assert {k: v for k, v in a.items() if k != "run.json"} == \
           {k: v for k, v in b.items() if k != "run.json"}


def test_landmarks_is_the_generator_parameter(pairs_csv: Path, tmp_path: Path):
    r = cli(pairs_csv, "-g", "landmarks-echo-test", "-o", tmp_path / "own")
    assert r.exit_code == 0, r.output
    assert _params(tmp_path / "own")["landmarks"] == "echo-default"  # no dlib forced on it
    r = cli(pairs_csv, "-g", "landmarks-echo-test", "--landmarks", "mine", "-o", tmp_path / "new")
    assert r.exit_code == 0, r.output
    assert _params(tmp_path / "new")["landmarks"] == "mine" and "Warning:" not in r.output
    # the old way: the same run, with a warning pointing at --landmarks
    r = cli(pairs_csv, "-g", "landmarks-echo-test", "-p", "landmarks=mine", "-o", tmp_path / "old")
    assert r.exit_code == 0, r.output
    assert r.output.count("Warning: --param landmarks=NAME is deprecated") == 1
    assert "use --landmarks NAME" in r.output
    assert _params(tmp_path / "old") == _params(tmp_path / "new")
    r = cli(pairs_csv, "-g", "landmarks-echo-test", "--backend", "mine", "-o", tmp_path / "bk")
    assert r.exit_code == 0, r.output
    assert "Warning: --backend is deprecated" in r.output and "use --landmarks" in r.output
    assert _params(tmp_path / "bk") == _params(tmp_path / "new")
    # both at once, or a generator without landmarks: usage errors naming the option
    r = cli(pairs_csv, "-g", "landmarks-echo-test", "--landmarks", "a", "--param", "landmarks=b",
            "-o", tmp_path / "both")
    assert r.exit_code == 2 and "give it once" in r.output
    r = cli(pairs_csv, "-g", "avg-test", "--landmarks", "dlib", "-o", tmp_path / "none")
    assert r.exit_code == 2 and "generator 'avg-test' has no parameter 'landmarks'" in r.output
    assert not (tmp_path / "both").exists() and not (tmp_path / "none").exists()


def test_p_is_param_and_quality_is_the_jpeg_quality(pairs_csv: Path, tmp_path: Path):
    r = cli(pairs_csv, "-g", "avg-test", "-p", "size=32", "--format", "jpg", "--quality", "80",
            "-o", tmp_path / "q80")
    assert r.exit_code == 0, r.output
    run = json.loads((tmp_path / "q80" / "run.json").read_text())
    assert run["params"]["size"] == 32 and run["jpeg_quality"] == 80
    r = cli(pairs_csv, "-g", "avg-test", "--param", "size=32", "--format", "jpg",
            "-o", tmp_path / "q95")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "q95" / "run.json").read_text())["jpeg_quality"] == 95
    small = [len(Path(m["path"]).read_bytes()) for m in load_manifest(tmp_path / "q80")]
    large = [len(Path(m["path"]).read_bytes()) for m in load_manifest(tmp_path / "q95")]
    assert all(s < g for s, g in zip(small, large))


def test_pairs_may_be_the_pairs_folder(tmp_path: Path):
    root = make_dataset(tmp_path / "ds", n=4)
    ds = load_folder(root, metadata=root / "london_info.csv", meta_id_column="face_id")
    folder = tmp_path / "pairs"
    folder.mkdir()
    write_pairs(make_pairs(ds, per_subject=1, seed=0, capture="03"), folder / PAIRS_FILE)
    r = cli(folder, "-g", "avg-test", "-o", tmp_path / "set")
    assert r.exit_code == 0, r.output
    ref = cli(folder / PAIRS_FILE, "-g", "avg-test", "-o", tmp_path / "ref")
    assert ref.exit_code == 0, ref.output
    assert snapshot(tmp_path / "set").keys() == snapshot(tmp_path / "ref").keys()
    assert json.loads((tmp_path / "set" / "run.json").read_text())["pairs_file"] == \
        str((folder / PAIRS_FILE).resolve())
    empty = tmp_path / "empty"
    empty.mkdir()
    r = cli(empty, "-g", "avg-test", "-o", tmp_path / "x")
    assert r.exit_code == 1 and r.output.startswith("Error: ") and "without a pairs file" in r.output
