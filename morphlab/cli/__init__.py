"""The ``morphlab`` command line: thin click commands over the library.

::

    morphlab pairs DATASET_DIR -o DIR | --pairs-file FILE [--strategy random|same-gender|similar]
                   [--per-subject N | -n N | --all] [--seed S] [-j N] [--loader NAME]
                   [--pattern REGEX] [--capture LABEL] [--metadata CSV ...]
    morphlab generate PAIRS -g landmark -o DIR [--alpha A] [--variant V ...] [--landmarks NAME]
                   [-p KEY=VALUE ...] [-j N] [--seed S] [--resume | --overwrite]
                   [--format png|jpg --quality Q] [--executor ray [--ray-address ADDR]]
    morphlab postprocess SET -o DIR --op jpeg:quality=75 --op print-scan ... [-j N] [--seed S]
    morphlab map-score ATTACK_SET --probes DIR -o DIR [--fr NAME[=MODEL] ...] [--fmr F]
                   [--calibration DIR] [--bootstrap N --seed S] [-j N] [--executor ray]
    morphlab split BONA_FIDE_DIR ... [--attacks SET ...] -o DIR [--test-fraction F] [--seed S]
    morphlab detect train -d DETECTOR --bona-fide DIR_OR_LIST --attacks SET_OR_LIST ... -o DIR
    morphlab detect eval|calibrate MODEL_DIR --bona-fide ... --attacks ... [-o DIR] [-j N]
    morphlab detect score MODEL_DIR IMAGES ... [--csv FILE | -o DIR] [-j N] [--executor ray]
    morphlab import MORPH_DIR -o DIR [--pattern REGEX | --contributors CSV] [--copy]
    morphlab run experiments/NAME.yaml [-o DIR] [--set KEY=VALUE ...] [-j N] [--seed S] [--check]
    morphlab models [install NAME ... | install --all | verify [NAME ...]]
    morphlab list | demo [-o DIR]

The conventions every command follows (``-o`` a folder, ``-j``, ``--seed``,
``--landmarks``, global options after the subcommand, an example in every ``--help``,
deprecated spellings as hidden aliases) are in :mod:`morphlab.cli._conventions`.

Errors from the library (bad input, missing files, unknown names, unusable images or
faces) end the command with ``Error: …`` and exit status 1; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click

from morphlab import __version__
from morphlab.cli._conventions import Group, configure_logging
from morphlab.outdir import FolderLockedError, ForeignFileError, OutputExistsError

log = logging.getLogger(__name__)

#: Library errors shown as a one-line message (FaceError, ImageError and PairsError are
#: ValueErrors; FileNotFoundError is an OSError; the output-folder rules of
#: :mod:`morphlab.outdir` raise RuntimeErrors of their own).
_USER_ERRORS = (ValueError, KeyError, OSError, RecursionError, FolderLockedError,
                ForeignFileError, OutputExistsError)

#: Modules whose Registry objects ``morphlab list`` shows (missing modules are skipped).
_REGISTRY_MODULES = (
    "morphlab.generators.base",
    "morphlab.face.base",
    "morphlab.recognition.base",
    "morphlab.detectors.base",
)


def _debug(ctx: click.Context) -> bool:
    return bool((ctx.find_root().obj or {}).get("debug"))


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__


class _Group(Group):
    """Turns library errors into ``Error: message`` (exit 1) unless ``--debug``.

    Ctrl-C (and SIGTERM where a command turns it into ``KeyboardInterrupt``) ends any
    command with exit status 128 + signal (130 for Ctrl-C), not a traceback.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            if _debug(ctx):
                raise
            signum = int(getattr(exc, "signum", 2))
            click.echo("Interrupted: what finished is kept; the same command continues it",
                       err=True)
            raise click.exceptions.Exit(128 + signum) from None
        except BrokenPipeError:  # `morphlab list | head`: stop quietly, like other tools
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # no second error while Python exits
            raise click.exceptions.Exit(128 + 13) from None
        except _USER_ERRORS as exc:
            if _debug(ctx):
                raise
            raise click.ClickException(_message(exc)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="morphlab")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def main(ctx: click.Context, verbose: int, debug: bool) -> None:
    """morphlab: make, detect and measure face morphing attacks."""
    configure_logging(ctx, verbose=verbose, debug=debug)


# The commands live one group per file; importing them registers them on ``main``.
from morphlab.cli import pairs as _pairs  # noqa: E402,F401
from morphlab.cli import generate as _generate  # noqa: E402,F401
from morphlab.cli import info as _info  # noqa: E402,F401
from morphlab.cli import mapscore as _mapscore  # noqa: E402,F401
from morphlab.cli import run as _run  # noqa: E402,F401
from morphlab.cli import postprocess as _postprocess  # noqa: E402,F401
from morphlab.cli import detect as _detect  # noqa: E402,F401
from morphlab.cli import models as _models  # noqa: E402,F401
from morphlab.cli import split as _split  # noqa: E402,F401
from morphlab.cli import importset as _importset  # noqa: E402,F401
from morphlab.cli.generate import generator_params, parse_param  # noqa: E402,F401

if __name__ == "__main__":  # python -m morphlab.cli
    sys.exit(main())
