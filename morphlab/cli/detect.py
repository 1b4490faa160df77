"""``morphlab detect train|score|eval|calibrate``."""

from __future__ import annotations

import logging

import click

from morphlab.cli import main
from morphlab.cli._conventions import (
    FolderOrOldCsv,
    deprecated_alias,
    executor_options,
    jobs_option,
    landmarks_option,
    out_option,
    seed_option,
)
from morphlab.cli.generate import parse_param

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------
# detect
# ----------------------------------------------------------------------------------------
def _presentation_options(f=None, *, attacks_required: bool = True):
    """--bona-fide/--attacks/--live/--variant/--pattern/--contributors, shared by train and eval
    (``@_presentation_options(attacks_required=False)``: --attacks optional, for --self-morph)."""
    if f is None:
        return lambda g: _presentation_options(g, attacks_required=attacks_required)
    options = [
        click.option("--bona-fide", "bona_fide", multiple=True, required=True,
                     type=click.Path(exists=True), metavar="DIR_OR_LIST",
                     help="Bona fide images: a folder, a list file (one path per line) or an "
                          "image; repeatable. Subject ids come from the file names (--pattern)."),
        click.option("--attacks", multiple=True, required=attacks_required, type=click.Path(exists=True),
                     metavar="SET_OR_LIST", help="Attack set (manifest.jsonl or its folder) or a list file of "
                                              "its morphs (morphlab split); repeatable"
                                              + ("." if attacks_required else " (optional with --self-morph).")),
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


def _left_out(fails: dict) -> str:
    """"N unreadable, M without a detectable face, K other" (the non-zero parts)."""
    parts = [(fails.get("n_unreadable", 0), "unreadable"),
             (fails.get("n_no_face", 0), "without a detectable face"),
             (fails.get("n_skipped", 0), "other")]
    return ", ".join(f"{n} {what}" for n, what in parts if n)


def _presentations(bona_fide, attacks, live, variants, pattern, contributors):
    from morphlab.detect import build_presentations

    return build_presentations(bona_fide, attacks, live=live, variants=list(variants) or None,
                               pattern=pattern, contributors=contributors)


@main.group(example="""\
morphlab detect train -d lbp-svm --bona-fide split/train_bona_fide.txt \\
    --attacks split/train_attacks.txt -o work/model -j 2
morphlab detect eval work/model --bona-fide split/test_bona_fide.txt \\
    --attacks split/test_attacks.txt -o work/eval -j 2""")
def detect() -> None:
    """Morphing attack detectors: train, score, evaluate (`morphlab list` shows them).

    Every command aligns the face of each image once: the crops are cached by image
    content and alignment settings under $MORPHLAB_CACHE (default ~/.cache/morphlab), so a
    second run on the same images reads them back; --no-cache neither reads nor writes
    the landmark and crop caches, -j aligns the images not cached in parallel processes.
    """


def _alignment_options(f):
    """-j/--jobs and --no-cache, shared by the four detect commands."""
    f = click.option("--no-cache", is_flag=True,
                     help="Neither read nor write the landmark and aligned-crop caches.")(f)
    return jobs_option("Worker processes aligning the images the crop cache does not hold "
                       "(the crops are the same for any -j).")(f)


@detect.command(name="train", example="""\
morphlab detect train -d lbp-svm --bona-fide split/train_bona_fide.txt \\
    --attacks split/train_attacks.txt -o work/model -j 2
morphlab detect train -d freq-logreg --bona-fide split/train_bona_fide.txt \\
    --self-morph --seed 3 -o work/selfmorph-model""")
@click.option("-d", "--detector", required=True, help="Registered detector name, e.g. lbp-svm.")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Detector hyper-parameter, repeatable (VALUE parsed as JSON when it can be).")
@_presentation_options(attacks_required=False)
@click.option("--self-morph", "self_morph", is_flag=True,
              help="S-MAD: also train on synthetic attacks made from each bona fide image and a "
                   "perturbed copy of itself (landmark jitter, local warps, colour/blur mismatch, "
                   "seam blending); --attacks then optional (with them: both kinds).")
@click.option("--self-morph-ratio", type=float, default=1.0, show_default=True,
              help="Synthetic attacks per bona fide training image.")
@seed_option("Seed of everything random in training: the detector's random_state (unless "
             "-p random_state=... sets it) and the --self-morph attacks (recorded in "
             "detector.json) [default: 0].", default=None)
@deprecated_alias("--self-morph-seed", dest="seed", new="--seed", type=click.IntRange(min=0))
@click.option("--self-morph-param", "self_morph_params", multiple=True, metavar="KEY=VALUE",
              help="Self-morph strength, repeatable (morphlab.detectors.selfmorph.DEFAULT_STRENGTH).")
@out_option("Model folder to write.")
@landmarks_option("Landmark backend for alignment (recorded: score, eval and calibrate use "
                  "the same; see `morphlab list`).")
@click.option("--crop-size", type=click.IntRange(min=16), default=None,
              help="Aligned crop side in pixels [default: the detector's].")
@_alignment_options
@click.option("--overwrite", is_flag=True,
              help="Replace a model morphlab trained in the -o folder before (other files there "
                   "are kept).")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def detect_train(detector, params, bona_fide, attacks, live, variants, pattern, contributors,
                 self_morph, self_morph_ratio, seed, self_morph_params,
                 out_dir, landmarks, crop_size, jobs, no_cache, overwrite, no_progress) -> None:
    """Train a detector on bona fide images and attack sets; save it to the -o folder.

    With --self-morph (single-image detectors only) synthetic attacks made from the bona
    fide images are added, so no attack set is needed.
    """
    from morphlab.detect import train_detector

    if not attacks and not self_morph:
        raise click.UsageError("Missing option '--attacks' (or pass --self-morph to train on "
                               "synthetic attacks made from the bona fide images)")
    if not self_morph and (self_morph_params or self_morph_ratio != 1.0):
        raise click.UsageError("--self-morph-ratio/--self-morph-param need --self-morph")
    params = dict(parse_param(p) for p in params)
    if seed is not None and "random_state" in params and params["random_state"] != seed:
        raise click.UsageError(f"--seed {seed} and -p random_state={params['random_state']} "
                               "disagree: give one of them")
    sm = ({"ratio": self_morph_ratio, **dict(parse_param(p) for p in self_morph_params)}
          if self_morph else None)
    data = _presentations(bona_fide, attacks, live, variants, pattern, contributors)
    s = train_detector(detector, data, out_dir, params=params, backend=landmarks,
                       crop_size=crop_size, progress=not no_progress, overwrite=overwrite,
                       self_morph=sm, seed=seed, jobs=jobs, use_cache=not no_cache)
    counts = ", ".join(f"{k}: {v}" for k, v in s["n_by_species"].items())
    click.echo(f"trained {detector} on {counts} ({len(s['subjects'])} identities) in "
               f"{s['fit_seconds']:.1f} s; model in {out_dir}")
    if _left_out(s):
        click.echo(f"left out: {_left_out(s)} (listed in detector.json)", err=True)


def _check_score_csv(csv, overwrite: bool) -> None:
    """Refuse to replace a CSV morphlab did not write, or one it wrote without --overwrite."""
    from morphlab.outdir import ForeignFileError, OutputExistsError, check_outputs

    try:
        check_outputs(csv.parent, [csv.name], overwrite=overwrite)
    except ForeignFileError:
        raise ForeignFileError(f"{csv}: exists and morphlab did not write it (or it was edited "
                               "since); refusing to replace it: move it away or choose another "
                               "file") from None
    except OutputExistsError:
        raise OutputExistsError(f"{csv}: holds scores morphlab wrote before; pass --overwrite "
                                "to replace them, or choose another file") from None


#: The scores file ``detect score -o DIR`` writes.
SCORES_CSV = "scores.csv"


@detect.command(name="score", example="""\
morphlab detect score work/model suspect.jpg other.png --csv scores.csv
morphlab detect score work/model attacks/ -o work/scored -j 2   # work/scored/scores.csv
morphlab detect score work/model attacks/ --csv s.csv --executor ray -j 4""")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--live", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="D-MAD: the live probe, once for all images or once per image (in order).")
@click.option("--csv", "csv_file", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Write the scores as CSV to FILE [default: print them].")
@deprecated_alias("--output", dest="csv_file", new="--csv", type=click.Path(dir_okay=False))
@click.option("-o", "--out", "out_dir", type=FolderOrOldCsv(), default=None, metavar="DIR",
              help=f"Write the scores to DIR/{SCORES_CSV} (a value ending in .csv is the "
                   "deprecated spelling of --csv).")
@click.option("--overwrite", is_flag=True,
              help="Replace a CSV that morphlab wrote there before (never a file it did not write).")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@_alignment_options
@executor_options()
@deprecated_alias("--ray-workers", dest="jobs", new="-j/--jobs", type=click.IntRange(min=1))
def detect_score(model_dir, images, live, csv_file, out_dir, overwrite, no_progress, jobs=1,
                 no_cache=False, executor="local", ray_address=None) -> None:
    """Score IMAGES (files or folders) with a trained model: higher = more likely a morph.

    Exits 1 when no image could be scored; otherwise the last line counts the failures.
    An existing CSV is replaced only with --overwrite, and only if morphlab wrote it
    (its folder's .morphlab-owned.json records it). With --executor ray, -j is the number
    of Ray workers (each aligns through the crop cache of its own machine).
    """
    import contextlib
    from collections import Counter
    from pathlib import Path

    from morphlab.cli._conventions import deprecation
    from morphlab.detect import expand_images, rows_to_csv, score_files
    from morphlab.io import atomic_write_text
    from morphlab.outdir import check_disjoint, locked_folder, record_owned
    from morphlab.ray_executor import make_executor, score_files_ray

    if out_dir is not None and out_dir.lower().endswith(".csv"):  # the old -o FILE
        deprecation("-o FILE.csv", "--csv FILE.csv")
        if csv_file is not None:
            raise click.UsageError("-o FILE.csv is the old spelling of --csv: give only one of them")
        csv_file, out_dir = out_dir, None
    if csv_file is not None and out_dir is not None:
        raise click.UsageError(f"give --csv FILE or -o DIR (writes DIR/{SCORES_CSV}), not both")
    pool = make_executor(executor, address=ray_address, workers=jobs)
    files = expand_images(images)
    csv = Path(csv_file) if csv_file else Path(out_dir) / SCORES_CSV if out_dir else None
    shown = csv_file or (str(csv) if csv else None)
    if out_dir is not None:  # a folder of its own: not an input folder, not the model
        check_disjoint(out_dir, {"model folder": model_dir})
        for folder in sorted({f.parent for f in files} | {Path(q).parent for q in live}):
            check_disjoint(out_dir, {"folder of input images": folder})
    if csv:  # never write the CSV over an input or into the model
        out = csv.resolve()
        for f in [*files, *map(Path, live)]:
            if f.resolve() == out:
                raise click.ClickException(f"--csv {shown} is one of the input images; choose "
                                           "another file")
        if Path(model_dir).resolve() in out.parents:
            raise click.ClickException(f"--csv {shown} lies inside the model folder {model_dir}; "
                                       "choose another file")
    with contextlib.ExitStack() as stack:
        if csv:  # the CSV's folder is locked from the check to the write
            stack.enter_context(locked_folder(csv.parent))
            _check_score_csv(csv, overwrite)
        if pool is None:
            rows = score_files(model_dir, files, live=list(live) or None,
                               progress=not no_progress, jobs=jobs, use_cache=not no_cache)
        else:
            rows = score_files_ray(model_dir, files, live=list(live) or None, executor=pool,
                                   progress=not no_progress, use_cache=not no_cache)
        if csv:
            atomic_write_text(csv, rows_to_csv(rows))
            record_owned(csv.parent, [csv.name])
    failed = Counter(r["error"].split(":", 1)[0] for r in rows if "error" in r)
    click.echo(_threshold_line(model_dir), err=True)
    if csv:
        click.echo(f"{len(rows) - sum(failed.values())} scores written to {shown}")
    else:
        for r in rows:
            if "score" in r:
                click.echo(f"{r['score']:+.4f}  {r['decision']:<9}  {r['path']}")
            else:
                click.echo(r["error"])
    if failed:
        what = ", ".join(f"{n} {k}" for k, n in sorted(failed.items()))
        if sum(failed.values()) == len(rows):
            raise click.ClickException(f"nothing could be scored: {what} (of {len(rows)} images)")
        click.echo(f"{sum(failed.values())} of {len(rows)} images not scored ({what})", err=True)


def _rates(m: dict, keys=("D-EER", "BPCER@APCER=10%")) -> str:
    """Summary figures with their count and Wilson 95 % interval (D-EER: its APCER and
    BPCER at the D-EER point), e.g. ``BPCER@APCER=10% 62.0 % [48.2, 74.1] (31/50)``."""
    from morphlab.metrics.intervals import rate

    iv = m.get("intervals") or {}

    def one(key: str) -> str:
        r = iv.get(key)
        return rate(r["k"], r["n"]).format() if r else f"{100 * m[key]:.2f} %"

    parts = []
    for key in keys:
        if key == "D-EER" and "D-EER APCER" in iv:
            parts.append(f"D-EER {100 * m['D-EER']:.2f} % (APCER {one('D-EER APCER')}, "
                         f"BPCER {one('D-EER BPCER')})")
        else:
            parts.append(f"{key} {one(key)}")
    return ", ".join(parts)


@detect.command(name="eval", example="""\
morphlab detect eval work/model --bona-fide split/test_bona_fide.txt \\
    --attacks split/test_attacks.txt -o work/eval -j 2
morphlab detect eval work/dmad-model --bona-fide frll/neutral --live frll/smiling \\
    --attacks work/attacks -o work/dmad-eval --contributors both""")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@_presentation_options
@out_option("Report folder: metrics.json, scores.csv, det.png, report.md/html.")
@click.option("--allow-overlap", is_flag=True,
              help="Evaluate even if test identities were seen in training (the report says so).")
@_alignment_options
@click.option("--overwrite", is_flag=True,
              help="Replace a report morphlab wrote in the -o folder before (other files there "
                   "are kept).")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def detect_eval(model_dir, bona_fide, attacks, live, variants, pattern, contributors, out_dir,
                allow_overlap, jobs, no_cache, overwrite, no_progress) -> None:
    """Evaluate a model on a subject-disjoint test set (ISO/IEC 30107-3 metrics)."""
    from morphlab.detect import evaluate_detector

    data = _presentations(bona_fide, attacks, live, variants, pattern, contributors)
    res = evaluate_detector(model_dir, data, out_dir, allow_overlap=allow_overlap,
                            progress=not no_progress, overwrite=overwrite, jobs=jobs,
                            use_cache=not no_cache)
    m = res["metrics"]
    click.echo(f"{m['n_bona_fide']} bona fide, {m['n_attack']} attacks: {_rates(m)}")
    click.echo(f"  at the model's threshold {res['info']['threshold']}: "
               f"{_rates(m, ('APCER', 'BPCER'))}")
    for sp, v in (m.get("per species") or {}).items():
        click.echo(f"  {sp} ({v['n']}): {_rates(v)}")
    for note in res["notes"]:
        click.echo(f"  note: {note}")
    click.echo(f"report in {out_dir}/report.html")
    if _left_out(res["failures"]):
        click.echo(f"left out: {_left_out(res['failures'])} (see the notes above)", err=True)


def _threshold_line(model_dir) -> str:
    """"decision threshold T: where it came from" of a model folder."""
    from morphlab.detect import threshold_origin
    from morphlab.detectors.base import read_model_info

    doc = read_model_info(model_dir)
    return f"decision threshold {doc['threshold']:.6g}: {threshold_origin(doc.get('metadata'))}"


@detect.command(name="calibrate", example="""\
morphlab detect calibrate work/model --bona-fide split/calib_bona_fide.txt \\
    --attacks split/calib_attacks.txt --bpcer 0.05 -j 2""")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@_presentation_options
@click.option("--bpcer", type=float, default=None,
              help="Target BPCER on the calibration data (0.1 = 10 %) [default: 0.1].")
@click.option("--apcer", type=float, default=None,
              help="Target APCER instead (the maximum over attack species when there are several).")
@click.option("--allow-overlap", is_flag=True,
              help="Calibrate even on identities seen in training (recorded in the model).")
@_alignment_options
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def detect_calibrate(model_dir, bona_fide, attacks, live, variants, pattern, contributors,
                     bpcer, apcer, allow_overlap, jobs, no_cache, no_progress) -> None:
    """Set MODEL_DIR's threshold on held-out data at an operating point (BPCER 10 %).

    The calibration identities must not be training identities (--allow-overlap to
    override). detector.json records the new threshold and where it came from; detect
    score and detect eval use and state it.
    """
    from morphlab.detect import calibrate_detector
    from morphlab.metrics.intervals import rate

    data = _presentations(bona_fide, attacks, live, variants, pattern, contributors)
    r = calibrate_detector(model_dir, data, bpcer=bpcer, apcer=apcer, allow_overlap=allow_overlap,
                           progress=not no_progress, jobs=jobs, use_cache=not no_cache)
    got = ", ".join(f"{k} {rate(v['k'], v['n']).format(2)}" for k, v in r["achieved"].items())
    click.echo(f"threshold {r['previous']['threshold']:.6g} -> {r['threshold']:.6g} at "
               f"{r['operating_point']} on {r['n_bona_fide']} bona fide / {r['n_attack']} attacks "
               f"({len(r['subjects'])} identities): {got}; saved in {model_dir}")
    if r["shared_identities"]:
        click.echo(f"warning: {len(r['shared_identities'])} calibration identities were also in "
                   "training (allowed explicitly; recorded)", err=True)
    if _left_out(r["failures"]):
        click.echo(f"left out: {_left_out(r['failures'])}", err=True)
