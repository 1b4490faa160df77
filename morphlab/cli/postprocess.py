"""``morphlab postprocess``: the same post-processing for every image of a set."""

from __future__ import annotations

import click

from morphlab.cli import main

# ----------------------------------------------------------------------------------------
# postprocess (morphlab.postprocess)
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
