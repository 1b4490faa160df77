"""``morphlab run``: an experiment configuration, end to end."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import click

from morphlab.cli import main
from morphlab.cli._conventions import jobs_option, out_option, seed_option

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------
# run (morphlab.experiments)
# ----------------------------------------------------------------------------------------
@main.command(example="""\
morphlab run experiments/frll_landmark.yaml --limit-pairs 4     # runs/frll_landmark-limit4
morphlab run experiments/frll_landmark.yaml -j 4 --seed 1 -o runs/frll_seed1
morphlab run experiments/frll_landmark.yaml --check --set dataset.root=/data/frll""")
@click.argument("config", type=click.Path(dir_okay=False, exists=True))
@out_option("Output folder [default: the configuration's output_dir, else runs/NAME; "
            "a reduced run: the same with -limitN appended].", required=False)
@click.option("--limit-pairs", type=click.IntRange(min=1), default=None, metavar="N",
              help="A reduced run of at most N pairs, in its own folder (runs/NAME-limitN); "
                   "wins over MORPHLAB_LIMIT_PAIRS and the configuration's limit_pairs.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a configuration value (repeatable; VALUE is YAML): "
                   "limit_pairs=4, dataset.root=/data/frll, generators.0.params.alpha=0.4. "
                   "MORPHLAB_LIMIT_PAIRS=N in the environment sets limit_pairs.")
@jobs_option("Worker processes of every stage (the same as --set jobs=N) [default: the "
             "configuration's jobs].", default=None)
@seed_option("Random seed of the experiment (the same as --set seed=S) [default: the "
             "configuration's seed].", default=None)
@click.option("--check", is_flag=True,
              help="Only validate the configuration, its paths and its parameter values "
                   "(builds each generator and detector; loads no model).")
@click.option("--no-progress", is_flag=True,
              help="No progress bars (the one line per stage stays).")
def run(config: str, out_dir: Optional[str], limit_pairs: Optional[int],
        overrides: tuple[str, ...], jobs: Optional[int], seed: Optional[int], check: bool,
        no_progress: bool) -> None:
    """Run an experiment (cached stages): pairs, attack sets, post-processing, MAP, detectors.

    Prints one line per stage ("[7/25] map: landmark × print-scan", "(cached)" when its
    result is reused), shows each distinct warning once, and ends with a summary line.
    """
    from morphlab.experiments import ConfigError, load_config, run_experiment

    overrides = _with_options(overrides, jobs=jobs, seed=seed)

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


def _with_options(overrides: tuple[str, ...], **options: Optional[int]) -> tuple[str, ...]:
    """``--set`` overrides with ``-j N`` / ``--seed S`` added as ``jobs=N`` / ``seed=S``.

    Raises:
        click.UsageError: the same key also given with ``--set``.
    """
    spelled = {"jobs": "-j/--jobs", "seed": "--seed"}
    keys = {spec.partition("=")[0].strip() for spec in overrides}
    added = []
    for key, value in options.items():
        if value is None:
            continue
        if key in keys:
            raise click.UsageError(f"{spelled[key]} and --set {key}=… set the same value: "
                                   "give only one of them")
        added.append(f"{key}={value}")
    return (*overrides, *added)
