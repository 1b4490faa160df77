"""``morphlab import``: an attack-set manifest for morphs made by another tool."""

from __future__ import annotations

import click

from morphlab.cli import main
from morphlab.cli._conventions import out_option


@main.command(name="import", example="""\
morphlab import ~/their_morphs -o work/their_set --generator their-tool \\
    --dataset ../shared/data/frll/neutral
morphlab map-score work/their_set --probes ../shared/data/frll/smiling -o work/their_map""")
@click.argument("morph_dir", type=click.Path(file_okay=False, exists=True))
@out_option("Attack-set folder to write (manifest.jsonl, run.json, import.json and a "
            "hard link to each morph).")
@click.option("--pattern", default=None, metavar="REGEX",
              help="Regex with named groups 'a' and 'b' (subject A, subject B) matched against "
                   "each whole file name without suffix [default: A_B, i.e. "
                   "(?P<a>[^_]+)_(?P<b>[^_]+)].")
@click.option("--contributors", "contributors_csv", type=click.Path(dir_okay=False, exists=True),
              default=None, metavar="CSV",
              help="CSV with columns file,a,b (optionally a_image,b_image) instead of --pattern.")
@click.option("--generator", default="external", show_default=True,
              help="Name of the tool that made the morphs (the manifest's generator).")
@click.option("--tag", default="imported", show_default=True,
              help="The morphs' variant (detect --variant, map-score groups).")
@click.option("--dataset", type=click.Path(file_okay=False, exists=True), default=None,
              help="Folder of the contributors' images (one per subject, e.g. FRLL neutral/): "
                   "recorded with their sha256; map-score needs them.")
@click.option("--subject-pattern", default=None,
              help="Regex with a named group 'subject' for the --dataset file names "
                   "[default: subject before the first '_' or '-'].")
@click.option("--copy", is_flag=True, help="Copy the morphs instead of hard-linking them.")
@click.option("--no-recursive", is_flag=True, help="Do not look into sub-folders.")
@click.option("--overwrite", is_flag=True,
              help="Replace a previous import morphlab wrote in OUT_DIR.")
def import_set(morph_dir, out_dir, pattern, contributors_csv, generator, tag, dataset,
               subject_pattern, copy, no_recursive, overwrite) -> None:
    """Make an attack set of MORPH_DIR, morphs made by another tool, for map-score and
    detect (the files in MORPH_DIR are neither moved nor changed).

    The example below imports morphs named 002_007.png (subject A 002, subject B 007),
    made from FRLL's neutral images, and scores them against the smiling probes.
    """
    from morphlab.importset import DEFAULT_PATTERN, import_attack_set

    if pattern is not None and contributors_csv is not None:
        raise click.UsageError("--pattern and --contributors exclude each other: choose one")
    s = import_attack_set(morph_dir, out_dir, pattern=pattern or DEFAULT_PATTERN,
                          contributors_csv=contributors_csv, generator=generator, tag=tag,
                          dataset=dataset, subject_pattern=subject_pattern, link=not copy,
                          recursive=not no_recursive, overwrite=overwrite)
    click.echo(f"imported {s.imported} morphs ({s.stored}) into {s.manifest}")
    if not s.contributors_known:
        click.echo("note: no --dataset, so the contributor images are not recorded: detect "
                   "train/eval can use this set, map-score cannot", err=True)
    if s.failures:
        click.echo(f"{len(s.failures)} of {s.imported + len(s.failures)} images not imported "
                   f"(unreadable; listed in {out_dir}/import.json), e.g. {s.failures[0][0]}: "
                   f"{s.failures[0][1]}", err=True)
