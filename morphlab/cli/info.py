"""``morphlab list`` and ``morphlab demo``."""

from __future__ import annotations

import importlib
import inspect
import logging
import re
from typing import Any

import click

from morphlab.cli import main
from morphlab.cli._conventions import out_option
from morphlab.datasets.pairs import STRATEGIES
from morphlab.cli import _REGISTRY_MODULES


log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------
# list
# ----------------------------------------------------------------------------------------
def _registries() -> list:
    from morphlab._registry import Registry

    found = []
    for mod_name in _REGISTRY_MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            if exc.name == mod_name:  # that component family does not exist (yet)
                continue
            raise
        found += [v for v in vars(mod).values() if isinstance(v, Registry)]
    return found


# :role:`target`, :role:`~a.b.c` (shown as ``c``), :role:`title <target>` (shown as title)
_ROLE_RE = re.compile(r":[a-z]+(?::[a-z]+)?:`(~?)([^`<]*?)\s*(?:<[^`>]*>)?`")
_LITERAL_RE = re.compile(r"``(.+?)``|`([^`]+)`")


def plain_text(text: str) -> str:
    """Sphinx/reST inline markup stripped for a terminal.

    ``:func:`x``` → ``x``; ``:class:`~a.b``` → ``b``; ``:ref:`title <t>``` → ``title``;
    double-backquoted literals and single-backquoted text lose their backquotes.
    """
    def role(m: re.Match) -> str:
        target = m.group(2)
        return target.rsplit(".", 1)[-1] if m.group(1) else target

    text = _ROLE_RE.sub(role, text)
    return _LITERAL_RE.sub(lambda m: m.group(1) if m.group(1) is not None else m.group(2), text)


def _summary_line(obj: Any) -> str:
    """The first line of ``obj``'s docstring, in plain text."""
    doc = inspect.getdoc(obj) or ""
    return plain_text(doc.strip().splitlines()[0]) if doc.strip() else ""


@main.command(name="list", example="""\
morphlab list
morphlab list | grep lbp   # where the LBP detector comes from""")
def list_components() -> None:
    """Show every registered component and where it comes from."""
    for reg in _registries():
        click.echo(f"{reg.kind}s ({reg.group}):")
        try:
            entries = list(reg.entries())
        except Exception as exc:  # one broken family must not hide the others
            click.echo(f"  (could not load: {type(exc).__name__}: {exc})")
            continue
        if not entries:
            click.echo("  (none)")
        width = max((len(e.name) for e in entries), default=0)
        for e in entries:
            click.echo(f"  {e.name:<{width}}  [{e.origin}]  {_summary_line(e.obj)}")
    from morphlab.datasets.loaders import LOADERS
    from morphlab.postprocess import OPS

    for title, table in (("pair strategies (morphlab pairs --strategy)", STRATEGIES),
                         ("dataset loaders (morphlab pairs --loader)", LOADERS),
                         ("post-processing operators (morphlab postprocess --op)", OPS)):
        click.echo(f"{title}:")
        width = max(len(n) for n in table)
        for name in sorted(table):
            click.echo(f"  {name:<{width}}  {_summary_line(table[name])}")


# ----------------------------------------------------------------------------------------
# demo
# ----------------------------------------------------------------------------------------
@main.command(example="""\
morphlab demo -o work/demo""")
@out_option("Output folder.", default="demo_out")
def demo(out_dir: str) -> None:
    """Run the main job on the embedded sample: pairs → morphs → report."""
    from morphlab.demo import run_demo

    result = run_demo(out_dir)
    click.echo(f"demo written to {result if result is not None else out_dir}")
