"""``morphlab pairs``: contributor pairs from a dataset folder."""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Optional

import click

from morphlab.cli import main
from morphlab.cli._conventions import (
    FolderOrOldCsv,
    deprecated_alias,
    deprecation,
    jobs_option,
    seed_option,
)
from morphlab.cli.generate import parse_param
from morphlab.datasets.pairs import PAIRS_FILE, STRATEGIES


log = logging.getLogger(__name__)


def _pairs_target(out_dir: Optional[str], pairs_file: Optional[str]) -> tuple[Path, Optional[Path]]:
    """``(pairs CSV, folder to lock or None)`` of ``-o DIR`` / ``--pairs-file FILE``.

    Neither given: ``pairs.csv`` in the current folder (as before ``-o`` became a folder).
    """
    old_csv = out_dir is not None and out_dir.lower().endswith(".csv")
    if out_dir is not None and pairs_file is not None:
        what = ("-o FILE.csv is the old spelling of --pairs-file FILE" if old_csv else
                "-o/--out DIR writes DIR/pairs.csv, --pairs-file FILE names the file")
        raise click.UsageError(f"{what}: give only one of them")
    if old_csv:
        deprecation("-o FILE.csv", "--pairs-file FILE or -o FOLDER")
        return Path(out_dir), None
    if out_dir is not None:
        return Path(out_dir) / PAIRS_FILE, Path(out_dir)
    return Path(pairs_file or PAIRS_FILE), None


# ----------------------------------------------------------------------------------------
# pairs
# ----------------------------------------------------------------------------------------
@main.command(example="""\
morphlab pairs morphlab/sample/frll --loader frll --strategy same-gender --seed 0 -o work/pairs
morphlab generate work/pairs -g landmark -o work/morphs        # reads work/pairs/pairs.csv
morphlab pairs morphlab/sample/frll/neutral --strategy similar --fr lbph -j 2 \\
    --pairs-file work/similar.csv""")
@click.argument("dataset_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("-o", "--out", "out_dir", default=None, type=FolderOrOldCsv(),
              metavar="DIR",
              help=f"Folder for the pairs file {PAIRS_FILE} and its protocol "
                   f"{PAIRS_FILE}.json [default: {PAIRS_FILE} in the current folder].")
@click.option("--pairs-file", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Write the pairs CSV to FILE instead (its protocol beside it, FILE.json).")
@deprecated_alias("--output", dest="pairs_file", new="--pairs-file FILE or -o FOLDER",
                  type=click.Path(dir_okay=False))
@click.option("--strategy", type=click.Choice(sorted(STRATEGIES)), default="random",
              show_default=True, help="Pair protocol.")
@click.option("--per-subject", type=click.IntRange(min=1), default=None,
              help="Each subject contributes to at most this many pairs [default: 1].")
@click.option("-n", "--n-pairs", type=click.IntRange(min=1), default=None,
              help="Stop after this many pairs [default: as many as --per-subject allows].")
@click.option("--all", "all_pairs", is_flag=True,
              help="Every admissible pair of the strategy (e.g. all same-gender pairs); "
                   "excludes --per-subject and -n.")
@seed_option()
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
@jobs_option("Processes embedding the faces for --strategy similar (the pairs are the "
             "same for every value).")
@click.option("--loader", default="folder", show_default=True,
              help="Dataset loader: folder, frll, fei, onot; the dedicated ones know which "
                   "image of each subject is the enrolment image (see morphlab.datasets).")
@click.option("--loader-param", "loader_params", multiple=True, metavar="KEY=VALUE",
              help="A loader parameter (repeatable), e.g. layout=release or enrolment=12; "
                   "VALUE is parsed as JSON when it can be.")
def pairs(dataset_dir: str, out_dir: Optional[str], pairs_file: Optional[str], strategy: str,
          per_subject: Optional[int],
          n_pairs: Optional[int], all_pairs: bool, seed: int, pattern: Optional[str], capture: Optional[str],
          metadata: Optional[str], meta_id_column: Optional[str],
          meta_gender_column: Optional[str], no_recursive: bool, overwrite: bool,
          fr_system: Optional[str], jobs: int,
          loader: str, loader_params: tuple[str, ...]) -> None:
    """Choose contributor pairs from a folder of face images.

    -o DIR writes DIR/pairs.csv and its protocol DIR/pairs.csv.json (`morphlab generate
    DIR` reads them); --pairs-file FILE writes FILE and FILE.json instead.
    With --strategy similar the pairs file has a similarity column (the --fr system's
    score, higher = more similar) and its protocol file names the system.
    """
    from morphlab.datasets.loaders import load_dataset
    from morphlab.datasets.pairs import make_pairs, sidecar_path, write_pairs
    from morphlab.outdir import check_outputs, locked_folder, record_owned

    if all_pairs and (per_subject is not None or n_pairs is not None):
        raise click.UsageError("--all takes every admissible pair; it excludes --per-subject and -n")
    if not all_pairs and per_subject is None:
        per_subject = 1
    if (meta_id_column or meta_gender_column) and not metadata:
        raise click.UsageError("--meta-id-column/--meta-gender-column need --metadata")
    output, folder = _pairs_target(out_dir, pairs_file)
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
    note = _metadata_note(dataset)
    if note:
        click.echo(note)
    pairset = make_pairs(
        dataset, strategy=strategy, per_subject=per_subject, n_pairs=n_pairs, seed=seed,
        capture=capture, jobs=jobs, **options,
    )
    with locked_folder(folder) if folder is not None else contextlib.nullcontext():
        _refuse_other_pairs(output, pairset.protocol, overwrite)
        names = [output.name, sidecar_path(output).name]
        if overwrite:  # replaces only a pairs file (and protocol) morphlab wrote there
            check_outputs(output.parent, names, overwrite=True)
        side = write_pairs(pairset, output)
        record_owned(output.parent, names)
    counts = pairset.protocol["counts"]
    ranked = pairset.protocol.get("similarity")
    by = f" by {ranked['system']} similarity" if ranked else ""
    click.echo(
        f"wrote {counts['pairs']} pairs ({counts['subjects_used']} of {counts['subjects']} "
        f"subjects, strategy {strategy}{by}, seed {seed}) to {output}; protocol in {side}"
    )


def _metadata_note(dataset) -> Optional[str]:
    """The one-line note on metadata subjects without images in the dataset folder, if any."""
    from morphlab.datasets.folder import read_metadata, unused_metadata_note

    meta = dataset.params.get("metadata")
    if not meta:
        return None
    ids = read_metadata(meta, id_column=dataset.params.get("meta_id_column"),
                        gender_column=dataset.params.get("meta_gender_column"))
    return unused_metadata_note(ids, dataset.subjects(), dataset.root)


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
            "another -o folder (or --pairs-file) or pass --overwrite."
        )
