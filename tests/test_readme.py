"""The README's examples run as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from click.testing import CliRunner

from morphlab.cli import main
from morphlab.io import read_image

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_starts_with_the_two_commands() -> None:
    first = _blocks("bash")[0]
    assert "make demo" in first and "make test" in first


def test_python_api_example_runs(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (code,) = [b for b in _blocks("python") if "create_generator" in b]
    exec(compile(code, str(README), "exec"), {})
    assert read_image(tmp_path / "morph.png").shape == (600, 600, 3)


def test_cli_tour_pairs_commands_run(tmp_path: Path, frll_set: Path, monkeypatch) -> None:
    """The tour's `morphlab pairs` lines run from the repository root: ``../shared/data/frll``
    is the embedded sample (same layout) and, with MORPHLAB_TEST_DATA, the shared set."""
    tour = next(b for b in _blocks("bash") if "morphlab pairs" in b)
    lines = tour.replace("\\\n", " ").splitlines()
    cmds = [l.split("#")[0].strip() for l in lines if l.strip().startswith("morphlab pairs")]
    assert len(cmds) >= 2
    monkeypatch.chdir(README.parent)
    for cmd in cmds:
        args = shlex.split(cmd)[1:]
        args = [str(tmp_path / Path(a).name) if a.startswith("work/") else a for a in args]
        args = [str(frll_set) if a == "../shared/data/frll" else a for a in args]
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 0, (cmd, res.output)
