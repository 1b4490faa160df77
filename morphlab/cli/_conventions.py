"""One set of command-line conventions, shared by every ``morphlab`` command.

- ``-o/--out`` is always a **folder**; a single file a command writes gets an option of
  its own (``--pairs-file``, ``--csv``).
- ``-j/--jobs`` wherever work is parallel, ``--seed`` wherever it is random.
- ``--landmarks NAME`` is the landmark backend everywhere; ``--quality Q`` (and the
  ``quality=`` operator parameter) is the JPEG quality everywhere.
- ``-v/--verbose`` and ``--debug`` are accepted after the subcommand too
  (``morphlab generate … -v`` as well as ``morphlab -v generate …``).
- Every ``--help`` ends with a worked example (``example=`` of :class:`Command`).
- Old spellings stay for one release as hidden aliases that print a one-line deprecation
  warning (:func:`deprecated_alias`).

Commands get all this by being created through ``@main.command(...)`` (or a group made by
``@main.group``): :class:`Group` makes :class:`Command` their class.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Callable, Optional

import click

#: Original warning display, restored by ``--debug``.
_SHOW_WARNING = warnings.showwarning
#: Deprecation warnings already printed in this process (each once).
_WARNED: set[str] = set()


def configure_logging(ctx: click.Context, *, verbose: int = 0, debug: bool = False) -> None:
    """Apply ``-v``/``--debug`` (given before or after the subcommand) to logging and warnings.

    Repeated calls only ever raise the verbosity: ``morphlab -v generate … -v`` is ``-vv``.
    """
    root = ctx.find_root()
    if root.obj is None:
        root.obj = {}
    state = root.obj
    state["verbose"] = state.get("verbose", 0) + verbose
    state["debug"] = bool(state.get("debug")) or debug
    v = state["verbose"]
    level = logging.WARNING if v == 0 else logging.INFO if v == 1 else logging.DEBUG
    if state["debug"]:
        level = min(level, logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)
    warnings.showwarning = _SHOW_WARNING if state["debug"] else _show_warning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Library warnings as one plain line on stderr (``--debug`` keeps Python's format)."""
    click.echo(f"Warning: {message}", err=True)


def deprecation(old: str, new: str) -> None:
    """Print once per process: ``Warning: OLD is deprecated …: use NEW``."""
    if old in _WARNED:
        return
    _WARNED.add(old)
    click.echo(f"Warning: {old} is deprecated and will be removed in the next release: "
               f"use {new}", err=True)


class FolderOrOldCsv(click.Path):
    """``-o/--out DIR`` (a folder); a value ending in ``.csv`` is the deprecated
    ``-o FILE.csv`` and passes through unchecked, for the command to keep its meaning
    with a warning (``pairs``, ``detect score``)."""

    def __init__(self) -> None:
        super().__init__(file_okay=False)

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.lower().endswith(".csv"):
            return value
        return super().convert(value, param, ctx)


class Option(click.Option):
    """A click option that may be *required after aliases*: ``required=True`` is checked
    only once the hidden deprecated aliases have had their say (click would otherwise
    reject ``--out-dir X`` for a missing ``-o``)."""

    def __init__(self, *args: Any, required: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, required=False, **kwargs)
        self.late_required = required

    def get_help_record(self, ctx: click.Context):  # shows "[required]" like click does
        if not self.late_required:
            return super().get_help_record(ctx)
        self.required = True
        try:
            return super().get_help_record(ctx)
        finally:
            self.required = False


def deprecated_alias(*decls: str, dest: str, new: str,
                     convert: Optional[Callable[[Any], Any]] = None,
                     **option_kwargs: Any) -> Callable:
    """A hidden option spelling ``decls`` that fills parameter ``dest`` with a warning.

    Args:
        decls: the old spelling(s), e.g. ``"--out-dir"``.
        dest: the parameter (function argument) of the current spelling, e.g. ``"out"``.
        new: the current spelling as the warning shows it, e.g. ``"-o/--out"``.
        convert: maps the old value to the new one (e.g. a file to its folder).
        option_kwargs: click option settings of the old spelling (``type``, ``multiple``,
            ``is_flag``...).

    Giving both spellings is a usage error; for ``multiple`` options the values are joined.
    """
    name = "_alias_" + decls[-1].lstrip("-").replace("-", "_")

    def decorator(f: Callable) -> Callable:
        opt = click.Option((name, *decls), hidden=True, expose_value=True, **option_kwargs)
        opt.alias_of = dest  # type: ignore[attr-defined]
        opt.alias_new = new  # type: ignore[attr-defined]
        opt.alias_convert = convert  # type: ignore[attr-defined]
        if not hasattr(f, "__click_params__"):
            f.__click_params__ = []  # type: ignore[attr-defined]
        f.__click_params__.append(opt)  # type: ignore[attr-defined]
        return f

    return decorator


def _given(value: Any) -> bool:
    return value is not None and value != () and value is not False


def _global_options() -> list[click.Option]:
    """Hidden ``-v/--verbose`` and ``--debug`` for use after the subcommand."""
    def on_verbose(ctx: click.Context, _param: click.Parameter, value: int) -> None:
        if value:
            configure_logging(ctx, verbose=value)

    def on_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            configure_logging(ctx, debug=True)

    return [
        click.Option(["-v", "--verbose"], count=True, expose_value=False,
                     is_eager=True, callback=on_verbose, help="More log output (-v info, -vv debug)."),
        click.Option(["--debug"], is_flag=True, expose_value=False,
                     is_eager=True, callback=on_debug, help="Show tracebacks instead of one-line errors."),
    ]


class Command(click.Command):
    """A command following the conventions above.

    Args:
        example: the worked example shown at the end of ``--help`` (a few lines of shell;
            ``tests/test_cli_conventions.py`` checks that every option it uses exists).
    """

    def __init__(self, *args: Any, example: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.example = example
        taken = {o for p in self.params for o in getattr(p, "opts", ())}
        self.params.extend(p for p in _global_options() if not set(p.opts) & taken)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        _resolve_aliases(self, ctx)
        return rest

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        _format_example(self.example, formatter)


class Group(click.Group):
    """A command group whose commands (and sub-groups) follow the conventions."""

    command_class = Command
    group_class = type  # sub-groups are Groups too

    def __init__(self, *args: Any, example: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.example = example

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        _format_example(self.example, formatter)


def _format_example(example: Optional[str], formatter: click.HelpFormatter) -> None:
    if not example:
        return
    with formatter.section("Example"):
        for line in example.strip("\n").splitlines():
            formatter.write(" " * formatter.current_indent + line.rstrip() + "\n")


def _resolve_aliases(cmd: click.Command, ctx: click.Context) -> None:
    """Move hidden deprecated spellings into their current parameter, then check the
    parameters that are required once aliases are counted."""
    for p in cmd.params:
        dest = getattr(p, "alias_of", None)
        if dest is None or p.name not in ctx.params:
            continue
        value = ctx.params.pop(p.name)
        if not _given(value):
            continue
        deprecation("/".join(p.opts), p.alias_new)  # type: ignore[attr-defined]
        convert = p.alias_convert  # type: ignore[attr-defined]
        if convert is not None:
            value = convert(value)
        current = ctx.params.get(dest)
        if isinstance(value, tuple):
            ctx.params[dest] = tuple(current or ()) + value
        elif _given(current) and current != _default_of(cmd, dest):
            raise click.UsageError(f"{'/'.join(p.opts)} is the old spelling of "
                                   f"{p.alias_new}: give only one of them", ctx=ctx)
        else:
            ctx.params[dest] = value
    for p in cmd.params:
        if getattr(p, "late_required", False) and not _given(ctx.params.get(p.name)):
            raise click.MissingParameter(ctx=ctx, param=p)


def _default_of(cmd: click.Command, name: str) -> Any:
    for p in cmd.params:
        if p.name == name:
            return p.default
    return None


# ---------------------------------------------------------------------------------------
# The shared options: one spelling, one help text.
# ---------------------------------------------------------------------------------------
def out_option(help: str, *, required: bool = True, default: Optional[str] = None,
               dest: str = "out_dir") -> Callable:
    """``-o/--out DIR`` (always a folder), with ``--out-dir`` as a deprecated alias."""
    def decorator(f: Callable) -> Callable:
        f = deprecated_alias("--out-dir", dest=dest, new="-o/--out",
                             type=click.Path(file_okay=False))(f)
        return click.option("-o", "--out", dest, cls=Option, required=required and default is None,
                            default=default, show_default=default is not None,
                            type=click.Path(file_okay=False), metavar="DIR", help=help)(f)
    return decorator


def jobs_option(help: str = "Worker processes.", *, default: int = 1) -> Callable:
    """``-j/--jobs N``."""
    return click.option("-j", "--jobs", type=click.IntRange(min=1), default=default,
                        show_default=True, help=help)


def seed_option(help: str = "Random seed.", *, default: Optional[int] = 0) -> Callable:
    """``--seed S``."""
    return click.option("--seed", type=int, default=default, show_default=default is not None,
                        help=help)


def landmarks_option(help: str = "Landmark backend (see `morphlab list`).", *,
                     default: Optional[str] = "dlib", dest: str = "landmarks") -> Callable:
    """``--landmarks NAME``, with ``--backend`` as a deprecated alias."""
    def decorator(f: Callable) -> Callable:
        f = deprecated_alias("--backend", dest=dest, new="--landmarks")(f)
        return click.option("--landmarks", dest, default=default,
                            show_default=default is not None, metavar="NAME", help=help)(f)
    return decorator


def quality_option(help: str = "JPEG quality (with --format jpg).", *,
                   default: int = 95) -> Callable:
    """``--quality Q`` (1–100)."""
    return click.option("--quality", type=click.IntRange(1, 100), default=default,
                        show_default=True, help=help)


def executor_options(*, gpus: bool = False) -> Callable:
    """``--executor local|ray`` and ``--ray-address ADDR`` (and, with ``gpus``,
    ``--ray-gpus-per-worker G``): one spelling for every command that can run on Ray.
    ``-j/--jobs`` is the number of Ray workers with ``--executor ray``."""
    def decorator(f: Callable) -> Callable:
        if gpus:
            f = click.option("--ray-gpus-per-worker", type=click.FloatRange(min=0), default=0.0,
                             help="GPUs each Ray worker reserves (e.g. 1 for arc2face; 0.5 "
                                  "shares one).")(f)
        f = click.option("--ray-address", default=None, metavar="ADDR",
                         help="Ray cluster to join (auto, HOST:6379) [default: a local Ray "
                              "instance for this run].")(f)
        return click.option(
            "--executor", type=click.Choice(["local", "ray"]), default="local",
            show_default=True,
            help="Compute here (local processes) or on Ray workers (pip install "
                 "'morphlab[ray]'; -j is then the number of Ray workers); this process "
                 "writes every file either way.")(f)
    return decorator
