"""``morphlab split``: a subject-disjoint train/test split by identity."""

from __future__ import annotations

import click

from morphlab.cli import main
from morphlab.cli._conventions import out_option, seed_option
from morphlab.cli.generate import parse_param


@main.command(example="""\
morphlab split morphlab/sample/frll --loader frll --attacks work/morphs \\
    --stratify gender --seed 0 -o work/split
morphlab detect train -d lbp-svm --bona-fide work/split/train_bona_fide.txt \\
    --attacks work/split/train_attacks.txt -o work/model""")
@click.argument("bona_fide", nargs=-1, type=click.Path(file_okay=False, exists=True))
@click.option("--attacks", multiple=True, type=click.Path(exists=True), metavar="SET",
              help="Attack set (folder or manifest.jsonl) to split too; repeatable.")
@out_option("Folder for the list files and split.json.")
@click.option("--test-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.5, show_default=True, help="Share of the identities on the test side.")
@seed_option("Random seed of the split.")
@click.option("--stratify", type=click.Choice(["gender"]), default=None,
              help="Split each gender apart (genders from the loader or --metadata).")
@click.option("--pattern", default=None,
              help="Regex with a named group 'subject' matched against file names without "
                   "suffix [default: subject before the first '_' or '-'].")
@click.option("--metadata", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Per-subject metadata CSV (gender for --stratify).")
@click.option("--meta-id-column", default=None,
              help="Metadata column holding the subject id [default: the first].")
@click.option("--meta-gender-column", default=None,
              help="Metadata column holding the gender [default: the one named *gender/*sex].")
@click.option("--no-recursive", is_flag=True, help="Do not look into sub-folders.")
@click.option("--loader", default="folder", show_default=True,
              help="Dataset loader for the bona fide folders: folder, frll, fei, onot.")
@click.option("--loader-param", "loader_params", multiple=True, metavar="KEY=VALUE",
              help="A loader parameter (repeatable), as in `morphlab pairs`.")
@click.option("--overwrite", is_flag=True,
              help="Replace a split morphlab wrote in OUT_DIR before (other files are kept).")
def split(bona_fide, attacks, out_dir, test_fraction, seed, stratify, pattern, metadata,
          meta_id_column, meta_gender_column, no_recursive, loader, loader_params,
          overwrite) -> None:
    """Split identities into disjoint train and test sides; write list files for
    `detect train/eval` (--bona-fide LIST, --attacks LIST).

    A morph goes to a side only if both its subjects are there; the others are listed in
    OUT_DIR/excluded_attacks.txt. The example below runs on the embedded sample, after
    `pairs` and `generate`.
    """
    from morphlab.datasets.split import split_by_identity, write_split

    if (meta_id_column or meta_gender_column) and not metadata:
        raise click.UsageError("--meta-id-column/--meta-gender-column need --metadata")
    if not bona_fide and not attacks:
        raise click.UsageError("give bona fide folder(s) and/or --attacks")
    given = {"pattern": pattern, "metadata": metadata, "meta_id_column": meta_id_column,
             "meta_gender_column": meta_gender_column,
             "recursive": False if no_recursive else None}
    params = {k: v for k, v in given.items() if v is not None}
    params.update(parse_param(spec) for spec in loader_params)
    s = split_by_identity(bona_fide, attacks, test_fraction=test_fraction, seed=seed,
                          loader=loader, loader_params=params, stratify=stratify)
    write_split(s, out_dir, overwrite=overwrite)
    n = s.summary()
    for side in ("train", "test"):
        c = n[side]
        click.echo(f"{side}: {c['identities']} identities, {c['bona_fide']} bona fide images, "
                   f"{c['attacks']} morphs")
    if s.excluded:
        click.echo(f"excluded: {len(s.excluded)} morphs whose subject A and subject B fall on "
                   f"different sides (listed in {out_dir}/excluded_attacks.txt)")
    click.echo(f"lists in {out_dir}: train_bona_fide.txt, train_attacks.txt, test_bona_fide.txt, "
               "test_attacks.txt")
