"""The ``morphlab`` command line: thin click commands over the library.

::

    morphlab pairs DATASET_DIR -o pairs.csv [--strategy random|same-gender] [--per-subject N]
                   [--n-pairs N] [--seed S] [--pattern REGEX] [--capture LABEL]
                   [--metadata CSV --meta-id-column C --meta-gender-column C]
    morphlab generate PAIRS_CSV -g landmark -o OUT_DIR [--alpha A] [--shape-alpha A]
                   [--texture-alpha A] [--variant V ...] [--param KEY=VALUE ...] [-j N]
                   [--seed S] [--resume | --overwrite] [--dataset-dir DIR] [--format png|jpg]
    morphlab list
    morphlab demo [-o DIR]
    morphlab map-score ATTACK_SET -p PROBES_DIR -o REPORT_DIR [--fr NAME[=MODEL] ...]
                   [--fmr F] [--threshold SYSTEM=VALUE ...] [--calibration DIR] [-j N]
    morphlab detect train -d DETECTOR --bona-fide DIR_OR_LIST --attacks MANIFEST ... -o MODEL_DIR
    morphlab detect score MODEL_DIR IMAGES ...
    morphlab detect eval MODEL_DIR --bona-fide ... --attacks MANIFEST ... -o REPORT_DIR
    morphlab postprocess IN_MANIFEST_OR_DIR -o OUT --op jpeg:q=75 --op print-scan ...
    morphlab run experiments/NAME.yaml [-o OUT] [--set KEY=VALUE ...] [--check]

Errors from the library (bad input, missing files, unknown names, unusable images or
faces) end the command with ``Error: …`` and exit status 1; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Any, Optional

import click

from morphlab import __version__
from morphlab.datasets.pairs import STRATEGIES

log = logging.getLogger(__name__)

#: Library errors shown as a one-line message (FaceError, ImageError and PairsError are
#: ValueErrors; FileNotFoundError is an OSError).
_USER_ERRORS = (ValueError, KeyError, OSError)

#: Modules whose Registry objects ``morphlab list`` shows (missing modules are skipped).
_REGISTRY_MODULES = (
    "morphlab.generators.base",
    "morphlab.face.base",
    "morphlab.recognition.base",
    "morphlab.detectors.base",
)


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__


class _Group(click.Group):
    """Turns library errors into ``Error: message`` (exit 1) unless ``--debug``."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _USER_ERRORS as exc:
            if (ctx.obj or {}).get("debug"):
                raise
            raise click.ClickException(_message(exc)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="morphlab")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def main(ctx: click.Context, verbose: int, debug: bool) -> None:
    """morphlab: make, detect and measure face morphing attacks."""
    ctx.obj = {"debug": debug}
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    if debug:
        level = min(level, logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not debug:
        warnings.showwarning = _show_warning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Library warnings as one plain line on stderr (``--debug`` keeps Python's format)."""
    click.echo(f"Warning: {message}", err=True)


# ----------------------------------------------------------------------------------------
# pairs
# ----------------------------------------------------------------------------------------
@main.command()
@click.argument("dataset_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("-o", "--output", default="pairs.csv", show_default=True,
              type=click.Path(dir_okay=False), help="Pairs CSV to write (and OUTPUT.json).")
@click.option("--strategy", type=click.Choice(sorted(STRATEGIES)), default="random",
              show_default=True, help="Pair protocol.")
@click.option("--per-subject", type=click.IntRange(min=1), default=1, show_default=True,
              help="Each subject contributes to at most this many pairs.")
@click.option("-n", "--n-pairs", type=click.IntRange(min=1), default=None,
              help="Stop after this many pairs [default: as many as --per-subject allows].")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--pattern", default=None,
              help="Regex with named groups 'subject' (and optionally 'capture') matched "
                   "against each file name without suffix [default: subject before the "
                   "first '_' or '-', the rest is the capture].")
@click.option("--capture", default=None,
              help="Capture label of the enrolment image (e.g. 03) [default: each "
                   "subject's first image by path].")
@click.option("--metadata", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Per-subject metadata CSV (e.g. gender).")
@click.option("--meta-id-column", default=None,
              help="Metadata column holding the subject id [default: the first].")
@click.option("--meta-gender-column", default=None,
              help="Metadata column holding the gender [default: the one named *gender/*sex].")
@click.option("--no-recursive", is_flag=True, help="Do not look into sub-folders.")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing pairs file made with other settings.")
@click.option("--fr", "fr_system", default=None, metavar="SYSTEM[=MODEL]",
              help="Face recognition system ranking similarity for --strategy similar "
                   "[default: dlib-resnet].")
@click.option("--loader", default="folder", show_default=True,
              help="Dataset loader: folder, frll, fei, onot; the dedicated ones know which "
                   "image of each subject is the enrolment image (see morphlab.datasets).")
@click.option("--loader-param", "loader_params", multiple=True, metavar="KEY=VALUE",
              help="A loader parameter (repeatable), e.g. layout=release or enrolment=12; "
                   "VALUE is parsed as JSON when it can be.")
def pairs(dataset_dir: str, output: str, strategy: str, per_subject: int,
          n_pairs: Optional[int], seed: int, pattern: Optional[str], capture: Optional[str],
          metadata: Optional[str], meta_id_column: Optional[str],
          meta_gender_column: Optional[str], no_recursive: bool, overwrite: bool,
          fr_system: Optional[str],
          loader: str, loader_params: tuple[str, ...]) -> None:
    """Choose contributor pairs from a folder of face images."""
    from morphlab.datasets.loaders import load_dataset
    from morphlab.datasets.pairs import make_pairs, write_pairs

    if (meta_id_column or meta_gender_column) and not metadata:
        raise click.UsageError("--meta-id-column/--meta-gender-column need --metadata")
    given = {
        "pattern": pattern, "metadata": metadata, "meta_id_column": meta_id_column,
        "meta_gender_column": meta_gender_column, "recursive": False if no_recursive else None,
    }
    params = {k: v for k, v in given.items() if v is not None}
    params.update(parse_param(spec) for spec in loader_params)
    options = {}
    if fr_system is not None:
        if strategy != "similar":
            raise click.UsageError("--fr chooses the system of --strategy similar only")
        options["system"] = fr_system
    dataset = load_dataset(loader, dataset_dir, **params)
    pairset = make_pairs(
        dataset, strategy=strategy, per_subject=per_subject, n_pairs=n_pairs, seed=seed,
        capture=capture, **options,
    )
    _refuse_other_pairs(Path(output), pairset.protocol, overwrite)
    side = write_pairs(pairset, output)
    counts = pairset.protocol["counts"]
    click.echo(
        f"wrote {counts['pairs']} pairs ({counts['subjects_used']} of {counts['subjects']} "
        f"subjects, strategy {strategy}, seed {seed}) to {output}; protocol in {side}"
    )


def _refuse_other_pairs(output: Path, protocol: dict, overwrite: bool) -> None:
    """An existing pairs file is only replaced by the same protocol (same bytes) or on request."""
    from morphlab.datasets.pairs import sidecar_path

    if overwrite or not output.exists():
        return
    side = sidecar_path(output)
    try:
        same = json.loads(side.read_text(encoding="utf-8")) == json.loads(json.dumps(protocol))
    except (OSError, ValueError):
        same = False
    if not same:
        raise click.ClickException(
            f"{output} already exists and was made with other settings (or has no protocol "
            f"file {side.name}); attack sets made from it would no longer match. Choose "
            "another -o or pass --overwrite."
        )


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
    alpha: Optional[float] = None,
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


@main.command()
@click.argument("pairs_csv", type=click.Path(dir_okay=False, exists=True))
@click.option("-g", "--generator", default="landmark", show_default=True,
              help="Generator name (see `morphlab list`).")
@click.option("-o", "--out-dir", required=True, type=click.Path(file_okay=False),
              help="Output folder for the morphs, manifest.jsonl and run.json.")
@click.option("--alpha", type=float, default=None, help="Morphing factor (shape and texture).")
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
@click.option("--param", "extra", multiple=True, metavar="KEY=VALUE",
              help="Any generator parameter (repeatable); VALUE is parsed as JSON when it "
                   "can be (0.3, true, [1,2], \"text\"), else taken as text.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Run seed (each pair's seed derives from it and the pair id).")
@click.option("--resume", is_flag=True,
              help="Continue the run in OUT_DIR; refused if its configuration differs.")
@click.option("--overwrite", is_flag=True,
              help="Delete the previous run in OUT_DIR (the files its manifest lists) first.")
@click.option("--dataset-dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Folder the pairs' image paths are relative to [default: from the "
                   "pairs file's .json sidecar, else the pairs file's folder].")
@click.option("--format", "image_format", type=click.Choice(["png", "jpg"]), default="png",
              show_default=True, help="Image format of the morphs.")
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True,
              help="JPEG quality (with --format jpg).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def generate(pairs_csv: str, generator: str, out_dir: str, alpha: Optional[float],
             shape_alpha: Optional[float], texture_alpha: Optional[float],
             variants: tuple[str, ...], extra: tuple[str, ...], jobs: int, seed: int,
             resume: bool, overwrite: bool, dataset_dir: Optional[str], image_format: str,
             quality: int, no_progress: bool, weights: Optional[str], mode: Optional[str],
             t: Optional[float], candidates: Optional[int], device: Optional[str],
             batch_size: Optional[int]) -> None:
    """Morph every pair of PAIRS_CSV into OUT_DIR (resumable)."""
    from morphlab.generators.base import GENERATORS
    from morphlab.generators.runner import generate_attack_set

    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    cls = GENERATORS.get(generator)
    params = generator_params(
        cls, alpha=alpha, shape_alpha=shape_alpha, texture_alpha=texture_alpha,
        variants=variants, extra=extra,
    )
    shortcuts = {"weights": weights, "mode": mode, "t": t, "candidates": candidates,
                 "device": device, "batch_size": batch_size}
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
    summary = generate_attack_set(
        pairs_csv, generator, params, out_dir, jobs=jobs, seed=seed, resume=resume,
        overwrite=overwrite, dataset_dir=dataset_dir, image_format=image_format,
        quality=quality, progress=not no_progress,
    )
    click.echo(
        f"{summary.pairs} pairs: {summary.skipped} already done, {summary.generated} "
        f"generated, {summary.failed} failed; {summary.morphs} morphs listed in "
        f"{summary.manifest}"
    )
    for rec in summary.failures[:10]:
        click.echo(f"  failed: pair {rec['pair_id']}: {rec['error']}", err=True)
    if len(summary.failures) > 10:
        click.echo(f"  … {len(summary.failures) - 10} more failures in the manifest", err=True)


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


def _summary_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


@main.command(name="list")
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
@main.command()
@click.option("-o", "--out-dir", default="demo_out", show_default=True,
              type=click.Path(file_okay=False), help="Output folder.")
def demo(out_dir: str) -> None:
    """Run the main job on the embedded sample: pairs → morphs → report."""
    from morphlab.demo import run_demo

    result = run_demo(out_dir)
    click.echo(f"demo written to {result if result is not None else out_dir}")


# ----------------------------------------------------------------------------------------
# map-score
# ----------------------------------------------------------------------------------------
@main.command(name="map-score")
@click.argument("attack_set", type=click.Path(exists=True))
@click.option("-p", "--probes", required=True, type=click.Path(file_okay=False, exists=True),
              help="Folder of bona fide probe images of the contributors (not the images "
                   "the morphs were made from), e.g. FRLL smiling/.")
@click.option("-o", "--out-dir", required=True, type=click.Path(file_okay=False),
              help="Report folder to write.")
@click.option("--fr", "systems", multiple=True, metavar="NAME[=MODEL]",
              help="Face recognition system, repeatable: dlib-resnet, lbph, "
                   "arcface-onnx=PATH, sface-onnx=PATH [default: dlib-resnet and lbph].")
@click.option("--probe-pattern", default=None,
              help="Regex with a named group 'subject' matched against probe file names "
                   "without suffix [default: subject before the first '_' or '-'].")
@click.option("--fmr", "target_fmr", type=click.FloatRange(0, 1), default=1e-3,
              show_default=True, help="Target FMR of the calibrated thresholds.")
@click.option("--threshold", "thresholds", multiple=True, metavar="SYSTEM=VALUE",
              help="Fixed similarity threshold for a system instead of calibrating, or "
                   "SYSTEM=published for its authors' value; repeatable.")
@click.option("--calibration", type=click.Path(file_okay=False, exists=True), default=None,
              help="Folder of bona fide images to calibrate on (all pairs) [default: the "
                   "probes against the attack set's enrolment images].")
@click.option("--calibration-pattern", default=None,
              help="File-name pattern of the calibration folder (as --probe-pattern).")
@click.option("--backend", default="dlib", show_default=True, help="Landmark backend.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes for embedding.")
@click.option("--allow-missing-probes", is_flag=True,
              help="Skip (and count) morphs whose contributor has no probe image.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the caches.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def map_score_command(attack_set: str, probes: str, out_dir: str, systems: tuple[str, ...],
                      probe_pattern: Optional[str], target_fmr: float,
                      thresholds: tuple[str, ...], calibration: Optional[str],
                      calibration_pattern: Optional[str], backend: str, jobs: int,
                      allow_missing_probes: bool, no_cache: bool, no_progress: bool) -> None:
    """Morphing Attack Potential of ATTACK_SET (a `morphlab generate` folder)."""
    from morphlab._registry import parse_spec
    from morphlab.datasets.folder import DEFAULT_PATTERN
    from morphlab.mapscore import map_score

    fixed: dict[str, Any] = {}
    for spec in thresholds:
        name, value = parse_spec(spec)
        if not value:
            raise click.UsageError(f"--threshold {spec!r}: expected SYSTEM=VALUE")
        try:
            fixed[name] = value if value == "published" else float(value)
        except ValueError:
            raise click.UsageError(f"--threshold {spec!r}: VALUE must be a number or "
                                   "'published'") from None
    res = map_score(
        attack_set, probes, out_dir, systems=list(systems) or ["dlib-resnet", "lbph"],
        probe_pattern=probe_pattern or DEFAULT_PATTERN, target_fmr=target_fmr,
        thresholds=fixed, calibration=calibration,
        calibration_pattern=calibration_pattern or DEFAULT_PATTERN, backend=backend,
        use_cache=not no_cache, workers=jobs, allow_missing_probes=allow_missing_probes,
        progress=not no_progress,
    )
    rep = res.report
    c = rep["counts"]
    click.echo(f"{c['morphs_used']} morphs scored ({c['morphs_skipped']} skipped); "
               f"report in {res.out_dir}/report.html")
    for s in rep["systems"]:
        label = s["label"]
        op = s["operating_point"]
        mm = rep["overall"]["per_system"][label]["minmax_mmpmr"]
        click.echo(f"  {label}: threshold {op['threshold']:.4g} ({op['policy']}), "
                   f"MinMax-MMPMR {100 * mm:.1f}%")
    click.echo(f"  MAP[1,1] {100 * res.map[0, 0]:.1f}%, MAP[1,{res.map.shape[1]}] "
               f"{100 * res.map[0, -1]:.1f}%")


# ----------------------------------------------------------------------------------------
# postprocess, run (morphlab.postprocess, morphlab.experiments)
# ----------------------------------------------------------------------------------------
@main.command()
@click.argument("source", type=click.Path(exists=True))
@click.option("-o", "--out-dir", required=True, type=click.Path(file_okay=False),
              help="Output folder for the processed images, manifest.jsonl and run.json.")
@click.option("--op", "ops", multiple=True, required=True, metavar="SPEC",
              help="Operator (repeatable, applied in order): jpeg:q=75, resize:width=413, "
                   "icao[:width=350,height=450], print-scan[:dpi=300,noise=2,...].")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the random steps (each image's derives from it and its sha256).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes.")
@click.option("--resume", is_flag=True, help="Continue the run in OUT_DIR (same configuration).")
@click.option("--overwrite", is_flag=True, help="Delete the previous run in OUT_DIR first.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def postprocess(source: str, out_dir: str, ops: tuple[str, ...], seed: int, jobs: int,
                resume: bool, overwrite: bool, no_progress: bool) -> None:
    """Apply the same post-processing to every image of SOURCE.

    SOURCE: an attack set (folder or manifest.jsonl), a set written by this command, or a
    folder of bona fide images. The new set's manifest points back to each source image.
    """
    from morphlab.postprocess import postprocess_set

    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    s = postprocess_set(source, out_dir, list(ops), seed=seed, jobs=jobs, resume=resume,
                        overwrite=overwrite, progress=not no_progress)
    click.echo(f"{s.items} images: {s.skipped} done before, {s.processed} processed, "
               f"{s.failed} failed; manifest {s.manifest}")
    for rec in s.failures[:10]:
        click.echo(f"  failed: {rec.get('pair_id') or rec.get('relpath')}: {rec['error']}", err=True)


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, exists=True))
@click.option("-o", "--out-dir", default=None, type=click.Path(file_okay=False),
              help="Output folder [default: the configuration's output_dir, else runs/NAME].")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a configuration value (repeatable; VALUE is YAML): "
                   "limit_pairs=4, dataset.root=/data/frll, generators.0.params.alpha=0.4. "
                   "MORPHLAB_LIMIT_PAIRS=N in the environment sets limit_pairs.")
@click.option("--check", is_flag=True, help="Only validate the configuration and its paths.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def run(config: str, out_dir: Optional[str], overrides: tuple[str, ...], check: bool,
        no_progress: bool) -> None:
    """Run an experiment (cached stages): pairs, attack sets, post-processing, MAP, detectors."""
    from morphlab.experiments import load_config, run_experiment

    if check:
        cfg = load_config(config, overrides=overrides).effective()
        cfg.check_paths(Path(config).parent)
        click.echo(f"{config}: valid; {len(cfg.generators)} generator(s), "
                   f"{len(cfg.postprocess)} protocol(s), data in {cfg.dataset_root(Path(config).parent)}")
        return
    res = run_experiment(config, out_dir=out_dir, overrides=overrides, progress=not no_progress)
    click.echo(f"{len(res.ran())} stage(s) ran, {len(res.cached())} cached, {res.seconds:.1f} s; "
               f"report: {res.report} and {res.report.with_suffix('.html')}")


# ----------------------------------------------------------------------------------------
# detect
# ----------------------------------------------------------------------------------------
def _presentation_options(f):
    """--bona-fide/--attacks/--live/--variant/--pattern/--contributors, shared by train and eval."""
    options = [
        click.option("--bona-fide", "bona_fide", multiple=True, required=True,
                     type=click.Path(exists=True), metavar="DIR_OR_LIST",
                     help="Bona fide images: a folder, a list file (one path per line) or an "
                          "image; repeatable. Subject ids come from the file names (--pattern)."),
        click.option("--attacks", multiple=True, required=True, type=click.Path(exists=True),
                     metavar="MANIFEST", help="Attack set (manifest.jsonl or its folder); repeatable."),
        click.option("--live", multiple=True, type=click.Path(exists=True), metavar="DIR_OR_LIST",
                     help="D-MAD: trusted live probes of the subjects (e.g. FRLL smiling/); repeatable."),
        click.option("--variant", "variants", multiple=True,
                     help="Use only morphs of this variant (e.g. complete); repeatable [default: all]."),
        click.option("--pattern", default=None,
                     help="Regex with a named group 'subject' matched against file names without "
                          "suffix [default: subject before the first '_' or '-']."),
        click.option("--contributors", type=click.Choice(["a", "b", "both"]), default="both",
                     show_default=True, help="D-MAD: pair each morph with the live probe of "
                                             "subject A, subject B or both."),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


def _presentations(bona_fide, attacks, live, variants, pattern, contributors):
    from morphlab.detect import build_presentations

    return build_presentations(bona_fide, attacks, live=live, variants=list(variants) or None,
                               pattern=pattern, contributors=contributors)


@main.group()
def detect() -> None:
    """Morphing attack detectors: train, score, evaluate (`morphlab list` shows them)."""


@detect.command(name="train")
@click.option("-d", "--detector", required=True, help="Registered detector name, e.g. lbp-svm.")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Detector hyper-parameter, repeatable (VALUE parsed as JSON when it can be).")
@_presentation_options
@click.option("-o", "--out-dir", required=True, type=click.Path(file_okay=False),
              help="Model folder to write.")
@click.option("--backend", default="dlib", show_default=True, help="Face backend for alignment.")
@click.option("--crop-size", type=click.IntRange(min=16), default=None,
              help="Aligned crop side in pixels [default: the detector's].")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def detect_train(detector, params, bona_fide, attacks, live, variants, pattern, contributors,
                 out_dir, backend, crop_size, no_progress) -> None:
    """Train a detector on bona fide images and attack sets; save it to OUT_DIR."""
    from morphlab.detect import train_detector

    data = _presentations(bona_fide, attacks, live, variants, pattern, contributors)
    s = train_detector(detector, data, out_dir, params=dict(parse_param(p) for p in params),
                       backend=backend, crop_size=crop_size, progress=not no_progress)
    counts = ", ".join(f"{k}: {v}" for k, v in s["n_by_species"].items())
    click.echo(f"trained {detector} on {counts} ({len(s['subjects'])} identities) in "
               f"{s['fit_seconds']:.1f} s; model in {out_dir}")
    if s["n_no_face"] or s["n_skipped"]:
        click.echo(f"  left out: {s['n_no_face']} without a detectable face, {s['n_skipped']} "
                   "other (see detector.json)")


@detect.command(name="score")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--live", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="D-MAD: the live probe, once for all images or once per image (in order).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write the scores as CSV here [default: print them].")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def detect_score(model_dir, images, live, output, no_progress) -> None:
    """Score IMAGES (files or folders) with a trained model: higher = more likely a morph."""
    from morphlab.detect import expand_images, rows_to_csv, score_files
    from morphlab.io import atomic_write_text

    rows = score_files(model_dir, expand_images(images), live=list(live) or None,
                       progress=not no_progress)
    if output:
        atomic_write_text(output, rows_to_csv(rows))
        click.echo(f"{len(rows)} scores written to {output}")
    else:
        for r in rows:
            verdict = f"{r['score']:+.4f}  {r['decision']:<9}" if "score" in r else f"{'no face':<19}"
            click.echo(f"{verdict}  {r['path']}")


@detect.command(name="eval")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@_presentation_options
@click.option("-o", "--out-dir", required=True, type=click.Path(file_okay=False),
              help="Report folder: metrics.json, scores.csv, det.png, report.md/html.")
@click.option("--allow-overlap", is_flag=True,
              help="Evaluate even if test identities were seen in training (the report says so).")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def detect_eval(model_dir, bona_fide, attacks, live, variants, pattern, contributors, out_dir,
                allow_overlap, no_progress) -> None:
    """Evaluate a model on a subject-disjoint test set (ISO/IEC 30107-3 metrics)."""
    from morphlab.detect import evaluate_detector

    data = _presentations(bona_fide, attacks, live, variants, pattern, contributors)
    res = evaluate_detector(model_dir, data, out_dir, allow_overlap=allow_overlap,
                            progress=not no_progress)
    m = res["metrics"]
    click.echo(f"{m['n_bona_fide']} bona fide, {m['n_attack']} attacks: D-EER {100 * m['D-EER']:.2f}%, "
               f"BPCER@APCER=10% {100 * m['BPCER@APCER=10%']:.2f}%")
    for sp, v in (m.get("per species") or {}).items():
        click.echo(f"  {sp} ({v['n']}): D-EER {100 * v['D-EER']:.2f}%, "
                   f"BPCER@APCER=10% {100 * v['BPCER@APCER=10%']:.2f}%")
    for note in res["notes"]:
        click.echo(f"  note: {note}")
    click.echo(f"report in {out_dir}/report.html")


if __name__ == "__main__":  # python -m morphlab.cli
    sys.exit(main())
