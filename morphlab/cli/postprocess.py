"""``morphlab postprocess``: the same post-processing for every image of a set."""

from __future__ import annotations

from typing import Optional

import click

from morphlab.cli import main
from morphlab.cli.generate import set_writer_options


# ----------------------------------------------------------------------------------------
# postprocess (morphlab.postprocess)
# ----------------------------------------------------------------------------------------
@main.command(example="""\
morphlab postprocess work/morphs -o work/morphs_ps --op icao --op print-scan \\
    --op jpeg:quality=90 --seed 0 -j 4
morphlab postprocess work/morphs -o work/morphs_ps --op icao --op print-scan \\
    --op jpeg:quality=90 --seed 0 -j 4 --executor ray   # the same bytes, on Ray workers""")
@click.argument("source", type=click.Path(exists=True))
@click.option("--op", "ops", multiple=True, required=True, metavar="SPEC",
              help="Operator (repeatable, applied in order): jpeg:quality=75, "
                   "resize:width=413, icao[:width=350,height=450,fill=background|crop|R,G,B], "
                   "background[:colour=240,240,240], print-scan[:dpi=300,noise=2,...].")
@set_writer_options(
    out_help="Output folder for the processed images, manifest.jsonl and run.json.",
    seed_help="Seed of the random steps (each image's derives from it and its sha256).")
def postprocess(source: str, out_dir: str, ops: tuple[str, ...], seed: int, jobs: int,
                resume: bool, overwrite: bool, no_progress: bool, executor: str = "local",
                ray_address: Optional[str] = None) -> None:
    """Apply the same post-processing to every image of SOURCE.

    SOURCE: an attack set (folder or manifest.jsonl), a set written by this command, or a
    folder of bona fide images. The new set's manifest points back to each source image.
    """
    from morphlab.cli.generate import folder_writer, report_failures
    from morphlab.postprocess import postprocess_set
    from morphlab.ray_executor import make_executor

    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    pool = make_executor(executor, address=ray_address, workers=jobs)
    with folder_writer(out_dir):
        s = postprocess_set(source, out_dir, list(ops), seed=seed, jobs=jobs, resume=resume,
                            overwrite=overwrite, progress=not no_progress, executor=pool)
    click.echo(f"{s.items} images: {s.skipped} done before, {s.processed} processed, "
               f"{s.failed} failed; manifest {s.manifest}")
    report_failures(s.failures, s.items, s.skipped + s.processed, "images", s.manifest,
                    lambda r: str(r.get("pair_id") or r.get("relpath") or r.get("file")))
