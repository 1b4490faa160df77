"""``morphlab postprocess`` and ``morphlab run``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import click

from morphlab.cli import main

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------
# postprocess, run (morphlab.postprocess, morphlab.experiments)
# ----------------------------------------------------------------------------------------
@main.command()
@click.argument("source", type=click.Path(exists=True))
@click.option("-o", "--out-dir", required=True, type=click.Path(file_okay=False),
              help="Output folder for the processed images, manifest.jsonl and run.json.")
@click.option("--op", "ops", multiple=True, required=True, metavar="SPEC",
              help="Operator (repeatable, applied in order): jpeg:q=75, resize:width=413, "
                   "icao[:width=350,height=450,fill=background|crop|R,G,B], "
                   "background[:colour=240,240,240], print-scan[:dpi=300,noise=2,...].")
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
    from morphlab.cli.generate import folder_writer, report_failures
    from morphlab.postprocess import postprocess_set

    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    with folder_writer(out_dir):
        s = postprocess_set(source, out_dir, list(ops), seed=seed, jobs=jobs, resume=resume,
                            overwrite=overwrite, progress=not no_progress)
    click.echo(f"{s.items} images: {s.skipped} done before, {s.processed} processed, "
               f"{s.failed} failed; manifest {s.manifest}")
    report_failures(s.failures, s.items, s.skipped + s.processed, "images", s.manifest,
                    lambda r: str(r.get("pair_id") or r.get("relpath") or r.get("file")))


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, exists=True))
@click.option("-o", "--out-dir", default=None, type=click.Path(file_okay=False),
              help="Output folder [default: the configuration's output_dir, else runs/NAME; "
                   "a reduced run: the same with -limitN appended].")
@click.option("--limit-pairs", type=click.IntRange(min=1), default=None, metavar="N",
              help="A reduced run of at most N pairs, in its own folder (runs/NAME-limitN); "
                   "wins over MORPHLAB_LIMIT_PAIRS and the configuration's limit_pairs.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a configuration value (repeatable; VALUE is YAML): "
                   "limit_pairs=4, dataset.root=/data/frll, generators.0.params.alpha=0.4. "
                   "MORPHLAB_LIMIT_PAIRS=N in the environment sets limit_pairs.")
@click.option("--check", is_flag=True,
              help="Only validate the configuration, its paths and its parameter values "
                   "(builds each generator and detector; loads no model).")
@click.option("--no-progress", is_flag=True,
              help="No progress bars (the one line per stage stays).")
def run(config: str, out_dir: Optional[str], limit_pairs: Optional[int],
        overrides: tuple[str, ...], check: bool, no_progress: bool) -> None:
    """Run an experiment (cached stages): pairs, attack sets, post-processing, MAP, detectors.

    Prints one line per stage ("[7/25] map: landmark × print-scan", "(cached)" when its
    result is reused), shows each distinct warning once, and ends with a summary line.

    \b
    Example (a reduced run of 4 pairs, in runs/frll_landmark-limit4):
      morphlab run experiments/frll_landmark.yaml --limit-pairs 4
    """
    from morphlab.experiments import ConfigError, load_config, run_experiment

    if check:
        cfg = load_config(config, overrides=overrides).effective(limit_pairs)
        try:
            cfg.check_paths(Path(config).parent)
            cfg.check_values()
        except (ConfigError, FileNotFoundError) as exc:
            raise type(exc)(f"{config}: {exc}") from None
        click.echo(f"{config}: valid; {len(cfg.generators)} generator(s), "
                   f"{len(cfg.postprocess)} protocol(s), data in {cfg.dataset_root(Path(config).parent)}"
                   f", output in {Path(out_dir) if out_dir else cfg.out_dir()}")
        return
    res = run_experiment(config, out_dir=out_dir, overrides=overrides, progress=not no_progress,
                         limit_pairs=limit_pairs, echo=click.echo)
    click.echo(res.summary())
