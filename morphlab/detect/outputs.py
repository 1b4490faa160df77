"""Output folders of ``morphlab detect`` (model and report folders, :mod:`morphlab.outdir`)
and the CSV rows written there."""

from __future__ import annotations

import contextlib
import csv
import io
import logging
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence, Union

from morphlab.detectors.base import MODEL_ARRAYS, MODEL_JSON
from morphlab.detectors.presentations import PresentationSet

log = logging.getLogger(__name__)

PathLike = Union[str, Path]

#: The files of a model folder, and of an evaluation report folder.
MODEL_FILES = (MODEL_JSON, MODEL_ARRAYS)
REPORT_FILES = ("metrics.json", "det.png", "histograms.png", "report.md", "report.html",
                "scores.csv")


def _image_folders(data: PresentationSet, what: str) -> list[tuple[str, Path]]:
    """``(description, folder)`` of every folder holding an image of ``data``."""
    folders = sorted({p.parent for it in data.items for p in (it.path, it.live) if p is not None})
    return [(f"folder of {what} images", f) for f in folders]


@contextlib.contextmanager
def output_folder(out: PathLike, files: Sequence[str], *, overwrite: bool,
                  sources: Sequence[tuple[str, Optional[PathLike]]]) -> Iterator[Path]:
    """Hold ``out`` for writing ``files``: checked against ``sources`` and locked.

    ``sources``: ``(description, folder)`` pairs of the inputs. Every check runs before
    the block, so a refused folder costs no work. The block writes the new result over
    the old one (a failed run leaves the previous result as it was) and then calls
    :func:`commit_outputs`. A folder this call created is removed again if the block
    fails before writing anything.

    Raises:
        ValueError: ``out`` is, contains or lies inside a source folder.
        morphlab.outdir.FolderLockedError: another process is writing ``out``.
        morphlab.outdir.ForeignFileError: a file of ``files`` exists that morphlab did
            not write (never replaced, even with ``overwrite``).
        morphlab.outdir.OutputExistsError: a previous result and not ``overwrite``.
    """
    from morphlab.outdir import BOOKKEEPING, check_disjoint, check_outputs, locked_folder

    out = Path(out)
    for what, src in sources:
        check_disjoint(out, {what: src})
    created = not out.exists()
    try:
        with locked_folder(out):
            check_outputs(out, files, overwrite=overwrite)
            yield out
    except BaseException:
        if created and out.is_dir() and all(p.name in BOOKKEEPING for p in out.iterdir()):
            for p in out.iterdir():
                p.unlink()
            out.rmdir()
        raise


def commit_outputs(out: Path, written: Iterable[str]) -> None:
    """Record ``written`` as morphlab's and delete the files of the previous result that
    the new one did not rewrite (only those still as morphlab wrote them)."""
    from morphlab.outdir import owned_files, record_owned, remove_owned

    written = sorted({Path(w).as_posix() for w in written})
    stale = remove_owned(out, [rel for rel in owned_files(out) if rel not in written])
    if stale:
        log.info("%s: removed files of the previous result: %s", out, ", ".join(stale))
    record_owned(out, written)


def rows_to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """CSV text of dict rows; the columns are the union of the keys, in first-seen order."""
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()
