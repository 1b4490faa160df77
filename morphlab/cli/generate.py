"""``morphlab generate``: morph attack sets from a pairs file."""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import signal
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import click

from morphlab.cli import main
from morphlab.cli._conventions import (
    deprecation,
    executor_options,
    jobs_option,
    landmarks_option,
    out_option,
    quality_option,
    seed_option,
)

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------
# what every command writing a manifest folder shares (generate, postprocess)
# ----------------------------------------------------------------------------------------
class _AlphaType(click.ParamType):
    """A float, or the word ``auto``."""

    name = "alpha"

    def convert(self, value, param, ctx):
        if isinstance(value, float) or value is None:
            return value
        if str(value).strip().lower() == "auto":
            return "auto"
        try:
            return float(value)
        except ValueError:
            self.fail(f"{value!r} is neither a number nor 'auto'", param, ctx)


def set_writer_options(*, out_help: str, seed_help: str, gpus: bool = False) -> Callable:
    """The options of every command that writes a resumable manifest folder (``generate``,
    ``postprocess``), one definition for both: ``-o/--out``, ``-j/--jobs``, ``--seed``,
    ``--executor``/``--ray-address`` (:func:`~morphlab.cli._conventions.executor_options`),
    ``--resume``, ``--overwrite``, ``--no-progress``."""
    def decorator(f: Callable) -> Callable:
        for deco in reversed((
            out_option(out_help),
            jobs_option("Worker processes (with --executor ray: Ray workers)."),
            executor_options(gpus=gpus),
            seed_option(seed_help),
            click.option("--resume", is_flag=True,
                         help="Continue the run in the output folder; refused if its "
                              "configuration differs."),
            click.option("--overwrite", is_flag=True,
                         help="Delete the previous run in the output folder (the files its "
                              "manifest lists) first."),
            click.option("--no-progress", is_flag=True, help="No progress bar."),
        )):
            f = deco(f)
        return f
    return decorator


@contextlib.contextmanager
def folder_writer(out_dir: str) -> Iterator[None]:
    """Ctrl-C / SIGTERM → exit 130 / 143 with a note; a locked folder → ``Error: …``."""
    from morphlab.outdir import FolderLockedError, ForeignFileError, OutputExistsError

    try:
        yield
    except KeyboardInterrupt as exc:
        signum = int(getattr(exc, "signum", signal.SIGINT))
        click.echo(f"Interrupted ({signal.Signals(signum).name}): {out_dir} keeps what "
                   "finished; the same command continues it", err=True)
        raise click.exceptions.Exit(128 + signum) from None
    except (FolderLockedError, ForeignFileError, OutputExistsError) as exc:
        raise click.ClickException(str(exc)) from None


def report_failures(failures: list[dict], total: int, succeeded: int, what: str,
                    manifest: Path, name: Callable[[dict], str]) -> None:
    """Show the failures; the LAST line is their count. Nothing succeeded → exit 1.

    Args:
        failures: the failed manifest lines of this run.
        total: the items of the run (pairs, images).
        succeeded: items with a result (done before or now).
        what: the items' name ("pairs", "images").
        manifest: where the failed lines are.
        name: names an item from its failed line.
    """
    for rec in failures[:10]:
        click.echo(f"  failed: {name(rec)}: {rec['error']}", err=True)
    if len(failures) > 10:
        click.echo(f"  … {len(failures) - 10} more failures in the manifest", err=True)
    if failures and not succeeded:
        raise click.ClickException(
            f"nothing succeeded: all {total} {what} failed (their lines in {manifest} say why)")
    if failures:
        click.echo(f"{len(failures)} of {total} {what} failed (their lines in {manifest} say "
                   "why)", err=True)


# ----------------------------------------------------------------------------------------
# generate
# ----------------------------------------------------------------------------------------
def parse_param(spec: str) -> tuple[str, Any]:
    """``"key=value"`` → ``(key, value)``; the value is parsed as JSON when it can be."""
    key, sep, raw = spec.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key.isidentifier():
        raise click.BadParameter(f"{spec!r}: expected KEY=VALUE", param_hint="--param")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def _accepts(cls: type, name: str) -> bool:
    try:
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return True
    return name in sig.parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()
    )


def generator_params(
    cls: type,
    *,
    alpha: Optional[float | str] = None,
    shape_alpha: Optional[float] = None,
    texture_alpha: Optional[float] = None,
    variants: tuple[str, ...] = (),
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The generator parameters the user gave (only those: defaults stay the generator's).

    ``--alpha`` sets ``alpha`` when the generator has it, else both ``shape_alpha`` and
    ``texture_alpha`` (unless given separately); ``--variant`` sets ``variants`` (a list)
    or, for a generator with a single ``variant`` parameter, that one.
    """
    params: dict[str, Any] = {}
    if alpha is not None:
        if _accepts(cls, "alpha") or not _accepts(cls, "shape_alpha"):
            params["alpha"] = alpha
        else:
            params["shape_alpha"] = alpha
            params["texture_alpha"] = alpha
    if shape_alpha is not None:
        params["shape_alpha"] = shape_alpha
    if texture_alpha is not None:
        params["texture_alpha"] = texture_alpha
    if variants:
        if not _accepts(cls, "variants") and _accepts(cls, "variant") and len(variants) == 1:
            params["variant"] = variants[0]
        else:
            params["variants"] = list(variants)
    given = set(params)
    for spec in extra:
        key, value = parse_param(spec)
        if key in given:
            raise click.BadParameter(
                f"{key!r} is also set by a convenience option; give it once", param_hint="--param"
            )
        params[key] = value
        given.add(key)
    return params


@main.command(example="""\
morphlab pairs morphlab/sample/frll --loader frll -o work/pairs
morphlab generate work/pairs -g landmark --landmarks dlib --alpha 0.5 -o work/morphs -j 2
morphlab generate work/pairs -g landmark -o work/morphs -j 2 --resume   # continue it
morphlab generate work/pairs -g landmark --format jpg --quality 90 -p crop=icao \\
    -o work/morphs_jpg""")
@click.argument("pairs_csv", metavar="PAIRS", type=click.Path(exists=True))
@click.option("-g", "--generator", default="landmark", show_default=True,
              help="Generator name (see `morphlab list`).")
@landmarks_option("Landmark backend of a generator that takes one (landmark: see "
                  "`morphlab list`) [default: the generator's own].", default=None)
@click.option("--alpha", type=_AlphaType(), default=None, metavar="A|auto",
              help="Morphing factor (shape and texture), or 'auto': per pair, the factor "
                   "that maximises the minimum similarity to both contributors under the "
                   "selection FR systems (landmark: --param selection_systems=...).")
@click.option("--shape-alpha", type=float, default=None, help="Shape morphing factor.")
@click.option("--texture-alpha", type=float, default=None, help="Texture morphing factor.")
@click.option("--variant", "variants", multiple=True,
              help="Output variant (repeatable), e.g. --variant complete --variant spliced.")
@click.option("--weights", type=click.Path(exists=True), default=None,
              help="Weights folder of a model-based generator (arc2face: the Arc2Face release).")
@click.option("--mode", default=None, help="Interpolation mode (arc2face: encoded-slerp, …).")
@click.option("--t", "t", type=click.FloatRange(0, 1), default=None,
              help="Morph factor in identity space (arc2face; 0 → subject A, 1 → subject B).")
@click.option("--candidates", type=click.IntRange(min=1), default=None,
              help="Candidates per pair; the one closest to both subjects is kept (arc2face).")
@click.option("--device", default=None, help="Torch device, e.g. cpu, cuda, cuda:1.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Pairs per generator call (batched generators).")
@click.option("-p", "--param", "extra", multiple=True, metavar="KEY=VALUE",
              help="Any generator parameter (repeatable); VALUE is parsed as JSON when it "
                   "can be (0.3, true, [1,2], \"text\"), else taken as text.")
@set_writer_options(
    out_help="Output folder for the morphs, manifest.jsonl and run.json.",
    seed_help="Run seed (each pair's seed derives from it and the pair id).", gpus=True)
@click.option("--dataset-dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Folder the pairs' image paths are relative to [default: from the "
                   "pairs file's .json sidecar, else the pairs file's folder].")
@click.option("--format", "image_format", type=click.Choice(["png", "jpg"]), default="png",
              show_default=True, help="Image format of the morphs.")
@quality_option("JPEG quality of the morphs (with --format jpg).", default=95)
@click.option("--allow-same-identity", is_flag=True,
              help="Accept pairs whose two images show one subject (special studies); "
                   "two copies of one image are always refused.")
def generate(pairs_csv: str, generator: str, out_dir: str, alpha: Optional[float],
             shape_alpha: Optional[float], texture_alpha: Optional[float],
             variants: tuple[str, ...], extra: tuple[str, ...], jobs: int, seed: int,
             resume: bool, overwrite: bool, dataset_dir: Optional[str], image_format: str,
             quality: int, no_progress: bool, weights: Optional[str], mode: Optional[str],
             t: Optional[float], candidates: Optional[int], device: Optional[str],
             batch_size: Optional[int], allow_same_identity: bool = False,
             executor: str = "local", ray_address: Optional[str] = None,
             ray_gpus_per_worker: float = 0.0, landmarks: Optional[str] = None) -> None:
    """Morph every pair of PAIRS (a pairs CSV, or the folder `morphlab pairs -o` wrote)
    into the output folder (resumable)."""
    from morphlab.datasets.pairs import resolve_pairs_path
    from morphlab.generators.base import GENERATORS
    from morphlab.generators.runner import generate_attack_set
    from morphlab.ray_executor import make_executor

    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    pairs_csv = str(resolve_pairs_path(pairs_csv))
    cls = GENERATORS.get(generator)
    if any(parse_param(spec)[0] == "landmarks" for spec in extra):
        deprecation("--param landmarks=NAME", "--landmarks NAME")
    params = generator_params(
        cls, alpha=alpha, shape_alpha=shape_alpha, texture_alpha=texture_alpha,
        variants=variants, extra=extra,
    )
    shortcuts = {"landmarks": landmarks, "weights": weights, "mode": mode, "t": t,
                 "candidates": candidates, "device": device, "batch_size": batch_size}
    for key, value in shortcuts.items():
        if value is None:
            continue
        if not _accepts(cls, key):
            raise click.BadParameter(f"generator {generator!r} has no parameter {key!r}",
                                     param_hint=f"--{key.replace('_', '-')}")
        if key in params:
            raise click.BadParameter(f"{key!r} is also given with --param; give it once",
                                     param_hint="--param")
        params[key] = str(Path(value).resolve()) if key == "weights" else value
    pool = make_executor(executor, address=ray_address, workers=jobs,
                         gpus_per_worker=ray_gpus_per_worker)
    with folder_writer(out_dir):
        summary = generate_attack_set(
            pairs_csv, generator, params, out_dir, jobs=jobs, seed=seed, resume=resume,
            overwrite=overwrite, dataset_dir=dataset_dir, image_format=image_format,
            quality=quality, progress=not no_progress, allow_same_identity=allow_same_identity,
            executor=pool,
        )
    click.echo(
        f"{summary.pairs} pairs: {summary.skipped} already done, {summary.generated} "
        f"generated, {summary.failed} failed; {summary.morphs} morphs listed in "
        f"{summary.manifest}"
    )
    report_failures(summary.failures, summary.pairs, summary.skipped + summary.generated,
                    "pairs", summary.manifest, lambda r: f"pair {r['pair_id']}")
