"""``morphlab map-score``: Morphing Attack Potential of attack sets."""

from __future__ import annotations

import logging
from typing import Any, Optional

import click

from morphlab.cli import main

log = logging.getLogger(__name__)

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
