"""Attack sets from morphs made by another tool — the library behind ``morphlab import``.

:func:`import_attack_set` turns a folder of morph images into a morphlab attack set
(``manifest.jsonl`` + ``run.json``, see :mod:`morphlab.generators.runner`) that
``morphlab map-score``, ``detect train/eval`` and ``postprocess`` read like one made by
``morphlab generate``:

* **contributors** (subject A, subject B) come from each file name (without suffix) by a
  regular expression with named groups ``a`` and ``b`` (:data:`DEFAULT_PATTERN`:
  ``A_B.ext``, e.g. ``002_007.png``), or from a CSV with columns ``file,a,b`` (``file``
  relative to the morph folder; optional ``a_image``/``b_image`` columns name the
  contributor images, relative to the dataset folder);
* every morph is hashed (sha256) and read once: an unreadable image gets a
  ``"status": "failed"`` line with its reason, the rest are imported;
* the source tool is recorded as the generator name (default ``"external"``, version
  ``"unknown"``), the variant as the tag (default ``"imported"``);
* with a dataset folder, each contributor's image (path, path relative to the folder,
  sha256) is recorded, as ``generate`` does: ``map-score`` needs it (it must leave the
  image a morph was made from out of the probes). A subject with several images there
  is an error unless the CSV names the image: point the dataset folder at the images the
  morphs were made from (e.g. FRLL ``neutral/``).

**The user's files are never moved or altered.** A manifest names its morphs by plain
file names inside its own folder, so the set folder gets a *hard link* to each morph
(no second copy of the bytes; a later ``--overwrite`` or ``postprocess`` removes or
replaces the link, never the original) — or a copy where a hard link is impossible
(another file system) or ``link=False``. The morph folder itself is not written to.

Problems are reported before anything is written, all of one kind at once (up to five
named): names that do not match the pattern, CSV rows naming missing files, images the
CSV does not list, two morphs with one file name (sub-folders are flattened) or the same
bytes, a morph whose subject A and subject B are one identity, contributors missing from
the dataset folder.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from morphlab import __version__

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: File-name pattern of subject A and subject B: ``A_B`` (each without ``_``).
DEFAULT_PATTERN = r"(?P<a>[^_]+)_(?P<b>[^_]+)"
#: ``run.json`` format of an imported set (``generate`` refuses to continue it).
IMPORT_FORMAT = "morphlab-imported-set"
LISTED = 5


class ImportSetError(ValueError):
    """The morph folder cannot be imported as given; the message says why and what to do."""


@dataclass
class ImportSummary:
    """What :func:`import_attack_set` did.

    Attributes:
        out_dir: the attack-set folder.
        manifest: its ``manifest.jsonl``.
        imported: morphs listed as ``"ok"``.
        failures: ``(file name, reason)`` of the morphs that could not be read.
        stored: ``"hardlink"``, ``"copy"`` or ``"hardlink+copy"``: how the morphs came into
            the set folder.
        contributors_known: whether the contributor images were recorded (``dataset``).
    """

    out_dir: Path
    manifest: Path
    imported: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    stored: str = "hardlink"
    contributors_known: bool = False


def _listed(items: Sequence[str]) -> str:
    items = list(items)
    return ", ".join(items[:LISTED]) + (f" … ({len(items)} in all)" if len(items) > LISTED else "")


def _compile(pattern: str) -> re.Pattern:
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise ImportSetError(f"--pattern {pattern!r} is not a valid regular expression ({exc})") from None
    if not {"a", "b"} <= set(rx.groupindex):
        raise ImportSetError(f"--pattern {pattern!r} needs the named groups 'a' and 'b' "
                           "(subject A and subject B), e.g. (?P<a>[^_]+)_(?P<b>[^_]+)")
    return rx


def _from_names(files: Sequence[Path], root: Path, pattern: str) -> dict[Path, tuple[str, str, dict]]:
    rx = _compile(pattern)
    out, bad = {}, []
    for f in files:
        m = rx.fullmatch(f.stem)
        if not m or not m.group("a") or not m.group("b"):
            bad.append(f.relative_to(root).as_posix())
            continue
        out[f] = (m.group("a"), m.group("b"), {})
    if bad:
        raise ImportSetError(
            f"{root}: {len(bad)} file name(s) do not match the contributor pattern {pattern!r} "
            f"(subject A and subject B from the name without suffix): {_listed(bad)}; pass "
            "--pattern with groups 'a' and 'b', or --contributors CSV (columns file,a,b)")
    return out


def _from_csv(files: Sequence[Path], root: Path, csv_path: Path) -> dict[Path, tuple[str, str, dict]]:
    by_rel = {f.relative_to(root).as_posix(): f for f in files}
    by_name: dict[str, list[Path]] = {}
    for f in files:
        by_name.setdefault(f.name, []).append(f)
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            cols = [c.strip() for c in (reader.fieldnames or [])]
            missing = [c for c in ("file", "a", "b") if c not in cols]
            if missing:
                raise ImportSetError(f"{csv_path}: no column(s) {', '.join(missing)}; the columns "
                                   f"must include file,a,b (found: {', '.join(cols) or 'none'})")
            rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    except UnicodeDecodeError:
        raise ImportSetError(f"{csv_path}: not UTF-8 text") from None
    out: dict[Path, tuple[str, str, dict]] = {}
    problems, seen = [], {}
    for num, row in enumerate(rows, start=2):
        name, a, b = row.get("file", ""), row.get("a", ""), row.get("b", "")
        if not name or not a or not b:
            problems.append(f"line {num}: file, a and b must all be given")
            continue
        f = by_rel.get(Path(name).as_posix())
        if f is None and len(by_name.get(name, [])) == 1:
            f = by_name[name][0]
        if f is None:
            problems.append(f"line {num}: {name} is not an image in {root}")
            continue
        if f in seen:
            problems.append(f"line {num}: {name} is listed twice (first on line {seen[f]})")
            continue
        seen[f] = num
        images = {k: row[k] for k in ("a_image", "b_image") if row.get(k)}
        out[f] = (a, b, images)
    if problems:
        raise ImportSetError(f"{csv_path}: {len(problems)} problem(s): {_listed(problems)}")
    unlisted = [f.relative_to(root).as_posix() for f in files if f not in out]
    if unlisted:
        raise ImportSetError(f"{root}: {len(unlisted)} image(s) the contributors CSV {csv_path} "
                           f"does not list: {_listed(unlisted)}; add them or move them away")
    return out


def _contributor_images(dataset: Path, pattern: Optional[str]) -> dict[str, list[Path]]:
    from morphlab.datasets.folder import DEFAULT_PATTERN as SUBJECT_PATTERN, load_folder

    ds = load_folder(dataset, pattern=pattern or SUBJECT_PATTERN, check_images=False)
    return {sid: [s.path for s in samples] for sid, samples in ds.by_subject().items()}


def _contributor(sid: str, path: Optional[Path], root: Optional[Path], hashes: dict) -> dict:
    from morphlab.io import sha256_file

    if path is None:
        return {"id": sid}
    path = path.resolve()
    if path not in hashes:
        hashes[path] = sha256_file(path)
    return {"id": sid, "path": str(path), "relpath": Path(os.path.relpath(path, root)).as_posix(),
            "sha256": hashes[path]}


def _place(src: Path, dst: Path, link: bool) -> str:
    """Hard-link (else copy) ``src`` to ``dst``; ``"hardlink"`` or ``"copy"``."""
    if link:
        try:
            os.link(src, dst)
            return "hardlink"
        except OSError as exc:
            log.info("%s: no hard link possible (%s); copying", src, exc.strerror)
    tmp = dst.with_name(f".{dst.name}.import.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    return "copy"


def import_attack_set(
    morph_dir: PathLike,
    out_dir: PathLike,
    *,
    pattern: str = DEFAULT_PATTERN,
    contributors_csv: Optional[PathLike] = None,
    generator: str = "external",
    tag: str = "imported",
    dataset: Optional[PathLike] = None,
    subject_pattern: Optional[str] = None,
    link: bool = True,
    recursive: bool = True,
    overwrite: bool = False,
) -> ImportSummary:
    """Build an attack set in ``out_dir`` from the morph images of ``morph_dir``.

    Args:
        morph_dir: folder of morph images (searched recursively unless ``recursive`` is
            false; hidden files left out).
        out_dir: the attack-set folder to write (new or empty, or a previous import with
            ``overwrite``); may not be, contain or lie inside ``morph_dir`` or ``dataset``.
        pattern: regex with groups ``a`` and ``b``, matched against the whole file name
            without suffix.
        contributors_csv: CSV with columns ``file,a,b`` (and optionally ``a_image``,
            ``b_image``), used instead of ``pattern``.
        generator: name of the tool that made the morphs (the manifest's ``generator``).
        tag: the morphs' variant (``tag`` and ``params.variant``).
        dataset: folder of the contributors' images, subject ids from the file names by
            ``subject_pattern`` (default: the part before the first ``_`` or ``-``).
        link: hard-link the morphs into ``out_dir`` (copy where impossible); ``False``
            copies.
        overwrite: replace a previous import morphlab wrote in ``out_dir``.

    Returns:
        An :class:`ImportSummary`.

    Raises:
        ValueError: names not matching the pattern, a bad CSV, duplicates, a morph of
            one identity, contributors missing from ``dataset``, no morph readable, or an
            output folder overlapping the inputs (each message names files, up to five).
        FileNotFoundError: a folder or the CSV is missing.
        morphlab.outdir.FolderLockedError / ForeignFileError / OutputExistsError: see
            :mod:`morphlab.outdir`.
    """
    from morphlab.datasets.folder import list_images
    from morphlab.generators.runner import MANIFEST_NAME, RUN_NAME, dumps_record
    from morphlab.io import ImageError, atomic_write_text, read_image, sha256_file
    from morphlab.outdir import (check_disjoint, check_outputs, locked_folder, owned_files,
                                 record_owned, remove_owned)

    src = Path(morph_dir)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: no such folder of morphs")
    for what, value in (("--generator", generator), ("--tag", tag)):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._\-]*", str(value)):
            raise ImportSetError(f"{what} {value!r}: use letters, digits, '.', '_' and '-'")
    out = Path(out_dir)
    check_disjoint(out, {"morph folder": src, "dataset folder": dataset})
    if out.exists() and not out.is_dir():
        raise ImportSetError(f"{out}: exists and is not a folder")
    root = src.resolve()
    files = [f.resolve() for f in list_images(root, recursive=recursive)]
    if not files:
        raise ImportSetError(f"{src}: no image files in this folder")

    # contributors, and every problem of the input before anything is written
    if contributors_csv is not None:
        csv_path = Path(contributors_csv)
        if not csv_path.is_file():
            raise FileNotFoundError(f"{csv_path}: contributors CSV not found")
        who = _from_csv(files, root, csv_path)
    else:
        who = _from_names(files, root, pattern)
    same = [f"{f.relative_to(root).as_posix()} ({a})" for f, (a, b, _) in who.items() if a == b]
    if same:
        raise ImportSetError(f"{len(same)} morph(s) name one identity as subject A and subject B: "
                           f"{_listed(same)}")
    by_name: dict[str, list[Path]] = {}
    for f in who:
        by_name.setdefault(f.name, []).append(f)
    clash = [" and ".join(p.relative_to(root).as_posix() for p in fs)
             for fs in by_name.values() if len(fs) > 1]
    if clash:
        raise ImportSetError(f"{src}: {len(clash)} file name(s) occur twice (the attack set holds "
                           f"its morphs side by side): {_listed(clash)}; rename them")
    reserved = sorted(set(by_name) & {MANIFEST_NAME, RUN_NAME, "import.json"})
    if reserved:
        raise ImportSetError(f"{src}: file name(s) {_listed(reserved)} are reserved in an attack set")

    images: dict[str, list[Path]] = {}
    data_root = Path(dataset).resolve() if dataset is not None else None
    if data_root is not None:
        images = _contributor_images(data_root, subject_pattern)
    hashes: dict[Path, str] = {}
    morph_sha: dict[Path, str] = {}
    contrib: dict[Path, tuple[dict, dict]] = {}
    problems = []
    for f, (a, b, given) in who.items():
        pair = []
        for key, sid in (("a_image", a), ("b_image", b)):
            if data_root is None:
                pair.append(_contributor(sid, None, None, hashes))
                continue
            if key in given:
                p = (data_root / given[key]).resolve()
                if not p.is_file():
                    problems.append(f"{f.name}: {key} {given[key]} not found in {data_root}")
                    continue
            else:
                found = images.get(sid, [])
                if len(found) != 1:
                    problems.append(
                        f"{f.name}: subject {sid} has {len(found)} images in {data_root}"
                        + (f" ({', '.join(p.name for p in found[:3])})" if found else ""))
                    continue
                p = found[0]
            pair.append(_contributor(sid, p, data_root, hashes))
        if len(pair) == 2:
            contrib[f] = (pair[0], pair[1])
    if problems:
        raise ImportSetError(
            f"contributor images: {len(problems)} problem(s): {_listed(problems)}. Point "
            "--dataset at the folder of the images the morphs were made from (one per "
            "subject, e.g. FRLL neutral/), or name them in the CSV (a_image, b_image)")
    for f in who:
        morph_sha[f] = sha256_file(f)
    seen: dict[str, Path] = {}
    dup = []
    for f, h in morph_sha.items():
        if h in seen:
            dup.append(f"{seen[h].relative_to(root).as_posix()} = {f.relative_to(root).as_posix()}")
        else:
            seen[h] = f
    if dup:
        raise ImportSetError(f"{src}: {len(dup)} morph(s) are byte-for-byte duplicates of another: "
                           f"{_listed(dup)}; remove one of each")

    # readable? (a per-file failure is recorded, not fatal)
    failures: list[tuple[str, str]] = []
    for f in who:
        try:
            read_image(f)
        except (ImageError, OSError, ValueError) as exc:
            failures.append((f.name, f"unreadable: {exc}"))
    failed = {n for n, _ in failures}
    if len(failed) == len(who):
        raise ImportSetError(f"{src}: none of the {len(who)} images could be read; first: "
                           f"{failures[0][1]}")

    config = {
        "format": IMPORT_FORMAT, "format_version": 1, "generator": generator,
        "generator_version": "unknown", "params": {"variant": tag}, "output_tags": [tag],
        "run_seed": None, "source_dir": str(root),
        "contributors_from": (f"csv {Path(contributors_csv).resolve()}" if contributors_csv
                              else f"file names, pattern {pattern}"),
        "dataset_dir": str(data_root) if data_root else None, "morphlab_version": __version__,
    }
    order = sorted(who, key=lambda f: f.relative_to(root).as_posix())
    names = [f.name for f in order if f.name not in failed]
    outputs = [*names, MANIFEST_NAME, RUN_NAME, "import.json"]
    stored: set[str] = set()
    with locked_folder(out):
        check_outputs(out, outputs, overwrite=overwrite)
        visible = [p.name for p in out.iterdir() if not p.name.startswith(".")]
        foreign = sorted(set(visible) - set(owned_files(out)))
        if foreign:
            raise ImportSetError(f"{out}: holds files that are not a previous import's "
                                 f"({_listed(foreign)}); choose an empty or new folder")
        placed: list[Path] = []
        try:
            for f in order:
                if f.name in failed:
                    continue
                dst = out / f.name
                if dst.exists() or dst.is_symlink():
                    dst.unlink()  # a previous import's (check_outputs: morphlab wrote it)
                how = _place(f, dst, link)
                stored.add(how)
                placed.append(dst)
                if how == "copy" and sha256_file(dst) != morph_sha[f]:
                    raise OSError(f"{dst}: the copy differs from {f} (changed while importing?)")
            lines = []
            for i, f in enumerate(order, start=1):
                a, b = contrib.get(f, ({"id": who[f][0]}, {"id": who[f][1]}))
                rec: dict[str, Any] = {
                    "pair_id": f"{i:04d}", "generator": generator, "generator_version": "unknown",
                    "params": {"variant": tag}, "seed": None, "run_seed": None,
                    "subject_a": a, "subject_b": b, "morphlab_version": __version__,
                }
                if f.name in failed:
                    rec.update(status="failed", error=dict(failures)[f.name], source=str(f))
                else:
                    rec.update(status="ok", file=f.name, sha256=morph_sha[f], tag=tag,
                               landmark_backend=None,
                               extra={"imported_from": str(f), "source_relpath": f.relative_to(root).as_posix()})
                lines.append(dumps_record(rec))
            atomic_write_text(out / MANIFEST_NAME, "".join(line + "\n" for line in lines))
            atomic_write_text(out / RUN_NAME, json.dumps(config, indent=2, sort_keys=True) + "\n")
            summary = ImportSummary(out, out / MANIFEST_NAME, imported=len(names), failures=failures,
                                    stored="+".join(sorted(stored)) or "none",
                                    contributors_known=data_root is not None)
            atomic_write_text(out / "import.json", json.dumps(
                {"imported": summary.imported, "failed": [{"file": n, "reason": r} for n, r in failures],
                 "stored": summary.stored, **config}, indent=2, sort_keys=True) + "\n")
        except BaseException:
            owned = owned_files(out)
            for p in placed:  # links/copies of this run that no record keeps
                if p.name not in owned and p.exists():
                    p.unlink()
            raise
        stale = [rel for rel in owned_files(out) if rel not in outputs]
        remove_owned(out, stale)
        record_owned(out, outputs)
    log.info("%s: %d morphs imported (%s), %d unreadable", out, summary.imported, summary.stored,
             len(failures))
    return summary
