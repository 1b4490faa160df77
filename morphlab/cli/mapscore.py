"""``morphlab map-score``: Morphing Attack Potential of attack sets."""

from __future__ import annotations

import logging
from typing import Optional

import click

from morphlab.cli import main
from morphlab.cli._conventions import (
    deprecated_alias,
    executor_options,
    jobs_option,
    landmarks_option,
    out_option,
    seed_option,
)

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------
# map-score
# ----------------------------------------------------------------------------------------
@main.command(name="map-score", example="""\
morphlab map-score work/morphs --probes data/frll/smiling -o work/map \\
    --fr dlib-resnet --fr facenet -j 2
morphlab map-score --scores work/scores --frs-info work/scores/frs_info.json -o work/map2""")
@click.argument("attack_set", required=False, type=click.Path(exists=True))
@click.option("--probes", type=click.Path(file_okay=False, exists=True),
              help="Folder of bona fide probe images of the contributors (not the images "
                   "the morphs were made from), e.g. FRLL smiling/. Required with ATTACK_SET.")
@deprecated_alias("-p", dest="probes", new="--probes",
                  type=click.Path(file_okay=False, exists=True))
@out_option("Report folder to write.")
@click.option("--fr", "systems", multiple=True, metavar="NAME[=MODEL]",
              help="Face recognition system, repeatable: dlib-resnet, facenet, mobilefacenet, "
                   "lbph, arcface-onnx=PATH, sface-onnx=PATH [default: every embedded deep "
                   "system, recognition.base.DEFAULT_SYSTEMS].")
@click.option("--probe-pattern", default=None,
              help="Regex with a named group 'subject' matched against probe file names "
                   "without suffix [default: subject before the first '_' or '-'].")
@click.option("--fmr", "target_fmr", type=float, default=1e-3, show_default=True,
              help="Target FMR of the calibrated thresholds, in (0, 1).")
@click.option("--threshold", "thresholds", multiple=True,
              metavar="SYSTEM=VALUE|distance:V|similarity:V|published",
              help="Fixed threshold for a system instead of calibrating: a similarity, a "
                   "distance for systems whose native score is one (dlib-resnet=distance:0.6), "
                   "or its authors' published value; repeatable.")
@click.option("--calibration", type=click.Path(file_okay=False, exists=True), default=None,
              help="Folder of bona fide images of subjects outside the attack set to calibrate "
                   "on (all pairs) [default: the subject-disjoint split: images of the subjects "
                   "who contribute to no morph, from the probe and source folders].")
@click.option("--calibration-pattern", default=None,
              help="File-name pattern of the calibration folder (as --probe-pattern).")
@click.option("--allow-calibration-overlap", is_flag=True,
              help="Accept a calibration set sharing images or subjects with the attack set "
                   "(a loud warning in the report) instead of refusing it.")
@click.option("--impostors", type=click.Choice(["all", "same-gender"]), default="all",
              show_default=True, help="Impostor comparisons of the calibration: every pair of "
                                      "different subjects, or same-gender pairs only.")
@click.option("--metadata", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Per-subject metadata CSV with the gender (as for `morphlab pairs`).")
@click.option("--meta-id-column", default=None, help="Subject-id column of --metadata.")
@click.option("--meta-gender-column", default=None, help="Gender column of --metadata.")
@click.option("--attempts", type=click.IntRange(min=1), default=None,
              help="Truncate every subject to its first R probes (sorted by name).")
@click.option("--bootstrap", type=click.IntRange(min=0), default=0, show_default=True,
              help="Subject-bootstrap replicates (threshold and MAP resampled together).")
@seed_option("Bootstrap seed.")
@landmarks_option("Landmark backend of every image (see `morphlab list`).")
@jobs_option("Worker processes for embedding (with --executor ray: Ray workers).")
@executor_options()
@click.option("--allow-missing-probes", is_flag=True,
              help="Skip (and list) morphs whose contributor has no probe image.")
@click.option("--overwrite", is_flag=True,
              help="Replace a previous map-score result in the -o folder (only files morphlab wrote).")
@click.option("--scores", "scores_dir", type=click.Path(file_okay=False, exists=True),
              default=None, help="Instead of ATTACK_SET and --probes: MAP from score files of the "
                                 "MAP authors' format, one <system>.txt per FR system "
                                 "(lines 'morphID subjectID score1 … scoreN'); needs --frs-info.")
@click.option("--frs-info", type=click.Path(dir_okay=False, exists=True), default=None,
              help='With --scores: JSON {"<system>": [threshold, is_similarity], …}; accept '
                   "score > threshold (similarity) or score < threshold (distance).")
@click.option("--scores-out", type=click.Path(file_okay=False), default=None,
              help="With ATTACK_SET: also write the scores in that format (<system>.txt + "
                   "frs_info.json) to this folder, for --scores elsewhere.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the caches.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def map_score_command(attack_set: str, probes: str, out_dir: str, systems: tuple[str, ...],
                      probe_pattern: Optional[str], target_fmr: float,
                      thresholds: tuple[str, ...], calibration: Optional[str],
                      calibration_pattern: Optional[str], allow_calibration_overlap: bool,
                      impostors: str, metadata: Optional[str], meta_id_column: Optional[str],
                      meta_gender_column: Optional[str], attempts: Optional[int],
                      bootstrap: int, seed: int, landmarks: str, jobs: int, executor: str,
                      ray_address: Optional[str], allow_missing_probes: bool, overwrite: bool,
                      scores_dir: Optional[str], frs_info: Optional[str],
                      scores_out: Optional[str], no_cache: bool, no_progress: bool) -> None:
    """Morphing Attack Potential of ATTACK_SET (a `morphlab generate` folder), or of
    score files (--scores DIR --frs-info FILE)."""
    if scores_dir is not None or frs_info is not None:
        return _from_score_files(scores_dir, frs_info, out_dir, overwrite)
    if attack_set is None:
        raise click.UsageError("missing ATTACK_SET (a `morphlab generate` folder), or give "
                               "--scores DIR --frs-info FILE")
    if probes is None:
        raise click.UsageError("ATTACK_SET needs --probes (bona fide probe images)")
    from morphlab._registry import parse_spec
    from morphlab.datasets.folder import DEFAULT_PATTERN
    from morphlab.mapscore import DEFAULT_SYSTEMS, MapScoreError, map_score
    from morphlab.mapscore.calibration import parse_threshold
    from morphlab.outdir import FolderLockedError, ForeignFileError, OutputExistsError
    from morphlab.ray_executor import make_executor

    fixed: dict[str, str] = {}
    for spec in thresholds:
        name, value = parse_spec(spec)
        if not value:
            raise click.UsageError(f"--threshold {spec!r}: expected SYSTEM=VALUE")
        try:
            parse_threshold(value)
        except MapScoreError as exc:
            raise click.UsageError(f"--threshold {spec!r}: {exc}") from None
        fixed[name] = value
    if (meta_id_column or meta_gender_column) and not metadata:
        raise click.UsageError("--meta-id-column/--meta-gender-column need --metadata")
    pool = make_executor(executor, address=ray_address, workers=jobs)
    try:
        res = map_score(
            attack_set, probes, out_dir, systems=list(systems) or list(DEFAULT_SYSTEMS),
            probe_pattern=probe_pattern or DEFAULT_PATTERN, target_fmr=target_fmr,
            thresholds=fixed, calibration=calibration,
            calibration_pattern=calibration_pattern or DEFAULT_PATTERN,
            allow_calibration_overlap=allow_calibration_overlap, impostors=impostors,
            metadata=metadata, meta_id_column=meta_id_column,
            meta_gender_column=meta_gender_column, attempts=attempts, bootstrap=bootstrap,
            seed=seed, backend=landmarks, use_cache=not no_cache, workers=jobs, executor=pool,
            allow_missing_probes=allow_missing_probes, overwrite=overwrite,
            progress=not no_progress, scores_out=scores_out,
        )
    except (FolderLockedError, ForeignFileError, OutputExistsError) as exc:
        raise click.ClickException(str(exc)) from None
    for line in summary_lines(res.report):
        click.echo(line)
    click.echo(f"report in {res.out_dir}/report.html")


#: Parameters that apply with --scores (everything else belongs to the image path).
_SCORE_FILE_PARAMS = frozenset({"scores_dir", "frs_info", "out_dir", "overwrite", "no_progress",
                                "verbose", "debug"})


def _from_score_files(scores_dir: Optional[str], frs_info: Optional[str], out_dir: str,
                      overwrite: bool) -> None:
    """``map-score --scores DIR --frs-info FILE -o OUT``."""
    from click.core import ParameterSource

    from morphlab.outdir import FolderLockedError, ForeignFileError, OutputExistsError
    from morphlab.scorefiles import map_score_from_files

    ctx = click.get_current_context()
    if scores_dir is None:
        raise click.UsageError("--frs-info needs --scores DIR (the folder of <system>.txt files)")
    if frs_info is None:
        raise click.UsageError("--scores needs --frs-info FILE (JSON {\"<system>\": "
                               "[threshold, is_similarity]})")
    given = [p for p in ctx.command.params if p.name not in _SCORE_FILE_PARAMS
             and getattr(p, "alias_of", None) not in _SCORE_FILE_PARAMS
             and ctx.get_parameter_source(p.name) not in (None, ParameterSource.DEFAULT)]
    if given:
        names = ", ".join(p.human_readable_name if isinstance(p, click.Argument) else p.opts[-1]
                          for p in given)
        raise click.UsageError(f"{names}: not used with --scores (the score files hold the "
                               "comparisons and frs-info the thresholds)")
    try:
        res = map_score_from_files(scores_dir, frs_info, out_dir, overwrite=overwrite)
    except (FolderLockedError, ForeignFileError, OutputExistsError) as exc:
        raise click.ClickException(str(exc)) from None
    for line in summary_lines(res.report):
        click.echo(line)
    click.echo(f"report in {res.out_dir}/report.html")


def summary_lines(rep: dict) -> list[str]:
    """The CLI summary of a ``map.json``: every rate with k/n and its 95 % interval."""
    from morphlab.reports.map_report import format_rate

    c = rep["counts"]
    ov = rep["overall"]
    cal = rep["settings"].get("calibration") or {}
    lines = [f"{c['morphs_used']} morphs scored ({c['morphs_skipped']} skipped, "
             f"{c.get('morphs_fte', 0)} with no face: FTE {format_rate(ov['fte']['any_system'])}); "
             f"R = {ov['attempts']['R']} attempts"]
    if isinstance(cal, dict) and cal:
        lines.append(f"calibration: {cal.get('description')}; {cal.get('subjects')} subjects, "
                     f"impostors: {cal.get('impostors')}")
    for w in rep.get("warnings", []):
        lines.append(f"WARNING: {w}")
    boot = rep.get("bootstrap")
    for s in rep["systems"]:
        label, op = s["label"], s["operating_point"]
        iv = ov["per_system"][label]["intervals"]["minmax_mmpmr"]
        b = ""
        if boot:
            lo, hi = boot["per_system"][label]["minmax_mmpmr"]
            b = "" if lo is None else f", bootstrap [{100 * lo:.1f}, {100 * hi:.1f}]"
        lines.append(f"  {label}: threshold {op['threshold']:.4g} ({op['policy']}), "
                     f"FMR {format_rate(op['fmr_rate'])}{_at_most(op)}, FNMR "
                     f"{format_rate(op['fnmr_rate'])}; MinMax-MMPMR {format_rate(iv)}{b}")
    rates = ov["map"]["rates"]
    unc = ov["unconditional"]["map"]["rates"]
    C = len(rates[0])
    cells = f"MAP[1,1] {format_rate(rates[0][0])}"
    if C > 1:  # with one system MAP[1,C] is MAP[1,1]: shown once
        cells += f", MAP[1,{C}] {format_rate(rates[0][-1])}"
    lines.append(f"  {cells} (unconditional, no-face morphs as failed attacks: "
                 f"{format_rate(unc[0][0])}" + (f", {format_rate(unc[0][-1])}" if C > 1 else "")
                 + ")")
    lines.extend(embedding_lines(c.get("embedding")))
    inputs = rep.get("inputs") or {}
    aset = inputs.get("attack_set")
    if aset:
        lines.append(f"post-processing protocol of the set: {aset['protocol']}")
    return lines


def embedding_lines(emb: Optional[dict]) -> list[str]:
    """The summary of ``counts["embedding"]``: per system, faces embedded (cache misses)
    and faces/s of one worker, and faces taken from the cache."""
    if not emb:
        return []
    who = f"{emb['workers']} {emb['executor']} worker{'s' if emb['workers'] != 1 else ''}"
    lines = [f"embedding: {emb['images']} images in {emb['wall_seconds']:.1f} s ({who}; "
             f"reading images and finding faces {emb['prepare_seconds']:.1f} s)"]
    for label, s in emb["per_system"].items():
        speed = ("" if s["faces_per_s"] is None
                 else f" in {s['seconds']:.1f} s, {s['faces_per_s']:.1f} faces/s per worker")
        lines.append(f"  {label}: {s['computed']} faces embedded{speed}; "
                     f"{s['from_cache']} from the cache")
    return lines


def _at_most(op: dict) -> str:
    r = op.get("fmr_rate") or {}
    return f" = FMR ≤ 1/{r['n']}" if r.get("n") and r.get("k") == 0 else ""
