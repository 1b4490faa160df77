"""The command-line conventions every command follows (morphlab/cli/_conventions.py)."""

from __future__ import annotations

import re
import shlex

import click
import pytest
from click.testing import CliRunner

from morphlab.cli import main
from morphlab.cli._conventions import Command, deprecated_alias, out_option


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, cmd in sorted(group.commands.items()):
        yield prefix + (name,), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, prefix + (name,))


ALL = list(_commands(main))


def _options(cmd: click.Command) -> set[str]:
    return {o for p in cmd.params for o in getattr(p, "opts", ()) + getattr(p, "secondary_opts", ())}


@pytest.mark.parametrize("path,cmd", ALL, ids=[" ".join(p) for p, _ in ALL])
def test_every_help_has_a_worked_example_using_real_options(path, cmd):
    out = CliRunner().invoke(main, [*path, "--help"])
    assert out.exit_code == 0, out.output
    assert "Example:" in out.output, f"`morphlab {' '.join(path)} --help` has no example"
    example = out.output.split("Example:", 1)[1]
    lines = [ln for ln in example.replace("\\\n", " ").splitlines()
             if ln.strip().startswith("morphlab ")]
    assert lines, "the example shows no morphlab command line"
    for line in lines:
        words = shlex.split(line.split("#", 1)[0])
        # the words after the command path, as far as they name this command
        target, i = main, 1
        while isinstance(target, click.Group) and i < len(words) and words[i] in target.commands:
            target, i = target.commands[words[i]], i + 1
        known = _options(target) | {"--help", "-h"}
        for w in words[i:]:
            if w.startswith("-") and not re.fullmatch(r"-\d.*", w):
                assert w.split("=", 1)[0] in known, f"{line!r}: {w} is not an option of it"


@pytest.mark.parametrize("path,cmd", [(p, c) for p, c in ALL if not isinstance(c, click.Group)],
                         ids=[" ".join(p) for p, c in ALL if not isinstance(c, click.Group)])
def test_global_options_are_accepted_after_the_subcommand(path, cmd):
    assert {"-v", "--debug"} <= _options(cmd)


@pytest.mark.parametrize("path,cmd", ALL, ids=[" ".join(p) for p, _ in ALL])
def test_out_is_always_a_folder(path, cmd):
    for p in cmd.params:
        if "-o" in getattr(p, "opts", ()):
            assert "--out" in p.opts, f"{' '.join(path)}: -o is not -o/--out"
            assert isinstance(p.type, click.Path) and not p.type.file_okay, \
                f"{' '.join(path)}: -o accepts a file"


def _toy():
    @click.command(cls=Command, example="morphlab toy -o out")
    @out_option("Folder.")
    @deprecated_alias("--old-n", dest="n", new="-n", type=int)
    @click.option("-n", type=int, default=1)
    def toy(out_dir, n):
        click.echo(f"out={out_dir} n={n}")
    return toy


def test_deprecated_alias_fills_the_new_parameter_with_a_warning():
    r = CliRunner().invoke(_toy(), ["--out-dir", "x", "--old-n", "3"])
    assert r.exit_code == 0, r.output
    assert "out=x n=3" in r.output
    assert "--out-dir is deprecated" in r.output and "use -o/--out" in r.output
    assert "--old-n is deprecated" in r.output


def test_required_option_may_be_given_by_its_alias_only():
    r = CliRunner().invoke(_toy(), [])
    assert r.exit_code == 2 and "Missing option '-o'" in r.output
    assert "[required]" in CliRunner().invoke(_toy(), ["--help"]).output
    assert "--out-dir" not in CliRunner().invoke(_toy(), ["--help"]).output


def test_both_spellings_at_once_is_a_usage_error():
    r = CliRunner().invoke(_toy(), ["-o", "a", "--out-dir", "b"])
    assert r.exit_code == 2 and "give only one" in r.output


def test_debug_after_the_subcommand_shows_the_traceback(tmp_path):
    missing = tmp_path / "nope.csv"
    args = ["split", str(tmp_path), "-o", str(tmp_path / "s"), "--metadata", str(missing)]
    plain = CliRunner().invoke(main, args)
    assert plain.exit_code == 2  # click's own check of --metadata
    bad = tmp_path / "empty"
    bad.mkdir()
    r1 = CliRunner().invoke(main, ["split", str(bad), "-o", str(tmp_path / "s")])
    r2 = CliRunner().invoke(main, ["split", str(bad), "-o", str(tmp_path / "s2"), "--debug"])
    assert r1.exit_code == 1 and "Error:" in r1.output
    assert r2.exception is not None and not isinstance(r2.exception, SystemExit)
