"""A dataset that is just a folder of face images.

The identity of each image comes from its file name through a regular expression with a
named group ``subject`` (required) and, optionally, ``capture`` (session / pose / expression
label). The expression is matched with :func:`re.match` (anchored at the start) against the
file *stem*, the name without folder and suffix. The default,
:data:`DEFAULT_PATTERN` = ``^(?P<subject>[^_\\-]+)(?:[_\\-](?P<capture>.+))?$``, reads

=====================  ===========  =========
file                   subject      capture
=====================  ===========  =========
``002_03.jpg``         ``002``      ``03``
``smiling/002_08.jpg`` ``002``      ``08``
``12-04.png``          ``12``       ``04``
``alice.jpg``          ``alice``    (none)
=====================  ===========  =========

An optional metadata CSV adds per-subject attributes (one row per subject). One column
holds the subject id (``meta_id_column``, default: the first column); every other column
is kept under its own name, lower-cased, except the gender column, which is renamed
``gender`` and whose values are normalised to ``female``/``male`` where recognisable
(``f``, ``woman``, ``M``…). The gender column is ``meta_gender_column`` when given, else
the column named ``gender``, else ``sex``, else the one column ending in
``_gender``/``_sex``. FRLL's ``london_info.csv`` (``face_id,face_age,face_gender,face_eth``) works
with ``meta_id_column="face_id"``.

Dedicated loaders (FEI, ONOT, FRLL) return the same :class:`Dataset` of :class:`Sample`.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Optional, Union

from morphlab.io import IMAGE_SUFFIXES, image_size

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: Default file-name pattern: subject before the first ``_``/``-``, the rest is the capture.
DEFAULT_PATTERN = r"^(?P<subject>[^_\-]+)(?:[_\-](?P<capture>.+))?$"

_GENDER_VALUES = {
    "f": "female", "female": "female", "woman": "female", "w": "female", "women": "female",
    "m": "male", "male": "male", "man": "male", "men": "male",
}
_EXAMPLES = 5  # how many offending names an error/warning message quotes

#: Longest subject or pair id, in UTF-8 bytes: morph file names join the pair id and both
#: subject ids (``<pair>_<a>_<b>_<tag>.png``) and must stay under the 255-byte limit of
#: file names, so this is checked when a dataset or pairs file is read, before computing.
MAX_ID_BYTES = 64

#: Companion files of a dataset folder that are expected beside the images (landmark
#: sidecars, metadata, notes) and are not reported as skipped.
COMPANION_SUFFIXES = (".tem", ".npy", ".json", ".csv", ".txt", ".md", ".yaml", ".yml", ".tsv")


@dataclass(frozen=True)
class Sample:
    """One image of a dataset.

    Attributes:
        path: the image file, absolute.
        subject: identity label.
        capture: capture/session label (``None`` when the loader has none).
        metadata: per-subject attributes, e.g. ``{"gender": "female", "face_age": "24"}``.
        role: what the sample serves as — :data:`ENROLMENT` (a morph source / document
            photo), :data:`PROBE` (a trusted live capture, never morphed) or ``None``
            (no declared role; the dedicated loaders leave e.g. FEI's rotated views so).
    """

    path: Path
    subject: str
    capture: Optional[str] = None
    metadata: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    role: Optional[str] = None

    @property
    def gender(self) -> Optional[str]:
        """``metadata["gender"]`` or ``None``."""
        return self.metadata.get("gender")


#: Sample roles (:attr:`Sample.role`).
ENROLMENT, PROBE = "enrolment", "probe"


@dataclass(frozen=True)
class Dataset:
    """Samples of one dataset folder.

    Attributes:
        root: the dataset folder, absolute; sample paths lie under it.
        samples: sorted by relative path.
        loader: the loader's name (``"folder"``, ``"frll"``…).
        params: the loader's parameters, recorded in pair-protocol files.
    """

    root: Path
    samples: tuple[Sample, ...]
    loader: str = "folder"
    params: Mapping[str, Any] = field(default_factory=dict)

    def subjects(self) -> list[str]:
        """Sorted subject ids."""
        return sorted({s.subject for s in self.samples})

    def by_subject(self) -> dict[str, list[Sample]]:
        """Samples grouped by subject (subjects sorted, samples in dataset order)."""
        out: dict[str, list[Sample]] = {k: [] for k in self.subjects()}
        for s in self.samples:
            out[s.subject].append(s)
        return out

    def enrolment(self) -> list[Sample]:
        """Samples whose role is :data:`ENROLMENT` (morph sources), in dataset order."""
        return [s for s in self.samples if s.role == ENROLMENT]

    def probes(self) -> dict[str, list[Sample]]:
        """Samples whose role is :data:`PROBE`, by subject (subjects sorted)."""
        out: dict[str, list[Sample]] = {}
        for s in sorted((s for s in self.samples if s.role == PROBE), key=lambda s: s.subject):
            out.setdefault(s.subject, []).append(s)
        return out

    def relpath(self, sample_or_path: Sample | Path) -> str:
        """A sample's path relative to :attr:`root`, POSIX separators."""
        p = sample_or_path.path if isinstance(sample_or_path, Sample) else Path(sample_or_path)
        return Path(os.path.relpath(p, self.root)).as_posix()


def compile_pattern(pattern: str) -> re.Pattern:
    """Compile a file-name pattern, checking it has a ``subject`` group."""
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid file-name pattern {pattern!r}: {exc}") from None
    if "subject" not in rx.groupindex:
        raise ValueError(
            f"file-name pattern {pattern!r} has no named group 'subject'; write e.g. "
            r"'^(?P<subject>\d+)_(?P<capture>\d+)'"
        )
    return rx


def normalise_gender(value: str) -> str:
    """``"F"``/``"woman"``… → ``"female"``, ``"M"``/``"man"``… → ``"male"``; else lower-case."""
    v = value.strip().lower()
    return _GENDER_VALUES.get(v, v)


def _examples(items: list[str]) -> str:
    shown = ", ".join(items[:_EXAMPLES])
    return shown + (f", … ({len(items)} in all)" if len(items) > _EXAMPLES else "")


def shown_name(name: str) -> str:
    """A file name as it can be printed: undecodable bytes as ``\\xNN`` escapes.

    On POSIX a name that is not valid UTF-8 reaches Python with surrogate escapes
    (``"caf\\udce9.jpg"``), which cannot be printed or written to a UTF-8 file.
    """
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def is_utf8_name(name: str) -> bool:
    """Whether a file name (as Python decoded it) is valid UTF-8."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_utf8_path(path: Path, what: str) -> None:
    """``ValueError`` (showing the name with ``\\xNN`` escapes) unless ``path`` is valid
    UTF-8: its name goes into pairs files, manifests and reports, which are UTF-8."""
    if not is_utf8_name(str(path)):
        raise ValueError(
            f"{shown_name(str(path))}: the {what}'s path is not valid UTF-8 (bytes shown as "
            "\\xNN); rename it, e.g. with convmv, so its name can be recorded"
        )


def id_problem(value: str) -> Optional[str]:
    """Why ``value`` cannot be a subject/pair id (``None`` when it can).

    Ids end up in CSV cells, manifest lines and file names: no NUL byte, no line break
    or other control character, valid UTF-8, at most :data:`MAX_ID_BYTES` bytes.
    """
    if "\x00" in value:
        return "contains a NUL byte"
    if "\n" in value or "\r" in value:
        return "contains a line break"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "contains a control character"
    if not is_utf8_name(value):
        return "is not valid UTF-8"
    size = len(value.encode("utf-8"))
    if size > MAX_ID_BYTES:
        return (
            f"is {size} bytes long, above the limit of {MAX_ID_BYTES} (morph file names "
            "join the pair id and both subject ids and must stay under 255 bytes)"
        )
    return None


def shown_id(value: str) -> str:
    text = repr(shown_name(value) if not is_utf8_name(value) else value)
    return text if len(text) <= 48 else text[:40] + "…" + text[-4:]


def _check_header(path: Path) -> None:
    """Open an image's header only (fast); unreadable or too-large files raise ImageError."""
    image_size(path)


class _Skipped:
    """Entries a folder listing leaves out, by reason; reported once, with examples."""

    def __init__(self) -> None:
        self.by_reason: dict[str, list[str]] = {}

    def add(self, reason: str, rel: str) -> None:
        self.by_reason.setdefault(reason, []).append(shown_name(rel))

    def warn(self, root: Path) -> None:
        if not self.by_reason:
            return
        n = sum(len(v) for v in self.by_reason.values())
        parts = [f"{len(v)} {reason} ({_examples(v)})" for reason, v in self.by_reason.items()]
        log.warning("%s: %d entr%s skipped: %s", shown_name(str(root)), n,
                    "y" if n == 1 else "ies", "; ".join(parts))


def list_images(root: Path, *, recursive: bool = True) -> list[Path]:
    """Image files under ``root`` (suffixes :data:`~morphlab.io.IMAGE_SUFFIXES`, any case).

    Hidden entries (``.*``) are left out silently. Everything else that is not used is
    counted and reported in one warning with a few examples: dangling symbolic links,
    symbolic-link loops, pipes/sockets/devices, folders named like images (``x.jpg/``),
    files of other formats (except :data:`COMPANION_SUFFIXES` such as ``.tem``), and
    images whose names are not valid UTF-8 (shown with ``\\xNN`` escapes; rename them).
    Symbolic links to folders are followed once (a loop is reported, not followed).

    Returns:
        The image paths (not resolved), sorted by path relative to ``root``.
    """
    skipped = _Skipped()
    files: list[Path] = []
    seen_dirs = {os.path.realpath(root)}

    def walk(folder: Path) -> None:
        try:
            # real entries before symbolic links: a folder reached both ways is listed
            # under its own path, the link is the one reported
            entries = sorted(os.scandir(folder), key=lambda e: (e.is_symlink(), e.name))
        except OSError as exc:
            skipped.add(f"unreadable folder(s) [{exc.strerror}]", os.path.relpath(folder, root))
            return
        for e in entries:
            if e.name.startswith("."):
                continue
            path = Path(e.path)
            rel = path.relative_to(root).as_posix()
            suffix = path.suffix.lower()
            try:
                is_dir = e.is_dir()
                is_file = e.is_file()
            except OSError:  # e.g. ELOOP on a self-referencing link
                skipped.add("symbolic-link loop(s)", rel)
                continue
            if e.is_symlink() and not (is_dir or is_file):
                if os.path.lexists(path) and not path.exists():
                    try:
                        os.stat(path)
                    except OSError as exc:
                        if exc.errno == 40:  # ELOOP
                            skipped.add("symbolic-link loop(s)", rel)
                            continue
                    skipped.add("dangling symbolic link(s)", rel)
                    continue
            if is_dir:
                if suffix in IMAGE_SUFFIXES:
                    skipped.add("folder(s) named like an image", rel + "/")
                    continue
                if not recursive:
                    continue
                real = os.path.realpath(path)
                if real in seen_dirs:
                    here = os.path.realpath(folder)
                    loop = here == real or here.startswith(real.rstrip(os.sep) + os.sep)
                    skipped.add("symbolic-link loop(s)" if loop
                                else "link(s) to a folder listed already", rel + "/")
                    continue
                seen_dirs.add(real)
                walk(path)
            elif is_file:
                if suffix in IMAGE_SUFFIXES:
                    if is_utf8_name(e.name):
                        files.append(path)
                    else:
                        skipped.add("image(s) whose name is not valid UTF-8 (rename them)", rel)
                elif suffix not in COMPANION_SUFFIXES:
                    skipped.add("file(s) of an unsupported format", rel)
            else:
                skipped.add("pipe(s), socket(s) or device(s)", rel)

    walk(root)
    skipped.warn(root)
    files.sort(key=lambda f: f.relative_to(root).as_posix())
    return files


def _guess_gender_column(cols: list[str], id_col: str) -> Optional[str]:
    """A column named gender, else sex, else the one ending in _gender/_sex; or None."""
    for exact in ("gender", "sex"):
        hits = [c for c in cols if c.lower() == exact and c != id_col]
        if len(hits) == 1:
            return hits[0]
    hits = [c for c in cols if c.lower().endswith(("_gender", "_sex")) and c != id_col]
    return hits[0] if len(hits) == 1 else None


def read_csv_rows(
    path: Path, what: str, error: type[ValueError] = ValueError
) -> list[tuple[int, list[str]]]:
    """All rows of a UTF-8 CSV file (a BOM is accepted) as ``(line number, fields)``.

    The line number is the one the record starts on.

    Raises:
        error: (a ValueError) the file is not UTF-8 text, or a row is not valid CSV
            (e.g. a field longer than the csv module's 131,072-character limit, which
            usually means an unbalanced quote or a file that is not CSV); the message
            names the file and the line.
    """
    rows: list[tuple[int, list[str]]] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            line = 1  # where the next record starts (a quoted field may span lines)
            try:
                for row in reader:
                    rows.append((line, row))
                    line = reader.line_num + 1
            except csv.Error as exc:
                if "field larger than field limit" in str(exc):
                    raise error(
                        f"{path}, line {line}: a field is longer than "
                        f"{csv.field_size_limit():,} characters; is this really a {what} "
                        "(an unbalanced quote makes the rest of the file one field)?"
                    ) from None
                raise error(f"{path}, line {line}: not a valid {what} row ({exc})") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not a UTF-8 text file ({exc})") from None
    return rows


def read_metadata(
    path: PathLike,
    *,
    id_column: Optional[str] = None,
    gender_column: Optional[str] = None,
) -> dict[str, dict[str, str]]:
    """Read a per-subject metadata CSV.

    Args:
        path: the CSV file (UTF-8, header row; a BOM is accepted).
        id_column: column holding the subject id; default: the first column.
        gender_column: column holding the gender, renamed ``gender`` with normalised values;
            default: the column named ``gender``, else ``sex``, else the one column named
            ``*_gender``/``*_sex`` (case-insensitive).

    Returns:
        ``{subject: {column: value}}``; column names lower-cased, values stripped, the id
        column left out, empty values left out.

    Raises:
        FileNotFoundError: no such file.
        ValueError: no header, unknown column names, duplicate or empty subject ids.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: metadata CSV not found")
    rows = read_csv_rows(p, "metadata CSV")
    header = rows[0][1] if rows else None
    if not header or not any(h.strip() for h in header):
        raise ValueError(f"{p}: metadata CSV is empty (a header row is needed)")
    cols = [h.strip() for h in header]
    id_col = cols[0] if id_column is None else id_column
    if id_col not in cols:
        raise ValueError(
            f"{p}: no subject-id column {id_col!r}; columns are {', '.join(cols)}"
        )
    if gender_column is not None and gender_column not in cols:
        raise ValueError(
            f"{p}: no gender column {gender_column!r}; columns are {', '.join(cols)}"
        )
    if gender_column is None:
        gender_column = _guess_gender_column(cols, id_col)
    id_idx = cols.index(id_col)
    # the gender column becomes "gender"; another column of that name keeps its own
    names = [
        "gender" if c == gender_column else f"{c.lower()}_original"
        if c.lower() == "gender" else c.lower()
        for c in cols
    ]
    out: dict[str, dict[str, str]] = {}
    first_row: dict[str, int] = {}
    for line, row in rows[1:]:
        if not any(v.strip() for v in row):
            continue
        if len(row) != len(cols):
            raise ValueError(
                f"{p}, line {line}: {len(row)} fields, the header has {len(cols)}"
            )
        sid = row[id_idx].strip()
        if not sid:
            raise ValueError(f"{p}, line {line}: empty subject id in column {id_col!r}")
        problem = id_problem(sid)
        if problem:
            raise ValueError(f"{p}, line {line}: subject id {shown_id(sid)} {problem}")
        if sid in out:
            raise ValueError(
                f"{p}, line {line}: subject {sid!r} already has a row (line "
                f"{first_row[sid]}); keep one row per subject"
            )
        rec = {}
        for i, (name, value) in enumerate(zip(names, row)):
            value = value.strip()
            if i == id_idx or not value:
                continue
            rec[name] = normalise_gender(value) if name == "gender" else value
        out[sid] = rec
        first_row[sid] = line
    return out


def unused_metadata_note(meta_ids: Iterable[str], subjects: Iterable[str],
                         root: PathLike) -> Optional[str]:
    """One line on the metadata subjects without an image in ``root``; None if there are none.

    E.g. ``metadata: 70 of 82 subjects have no images in DIR (e.g. 018, 019, …)``.
    """
    meta = set(meta_ids)
    unused = sorted(meta - set(subjects))
    if not unused:
        return None
    shown = ", ".join(unused[:_EXAMPLES]) + (", …" if len(unused) > _EXAMPLES else "")
    return (f"metadata: {len(unused)} of {len(meta)} subjects have no images in "
            f"{shown_name(str(root))} (e.g. {shown})")


def load_folder(
    root: PathLike,
    *,
    pattern: str = DEFAULT_PATTERN,
    metadata: Optional[PathLike] = None,
    meta_id_column: Optional[str] = None,
    meta_gender_column: Optional[str] = None,
    recursive: bool = True,
    check_images: bool = True,
    match_path: bool = False,
) -> Dataset:
    """Load a folder of face images as a :class:`Dataset`.

    Image files (suffixes :data:`morphlab.io.IMAGE_SUFFIXES`, any case) are found in
    ``root`` and, when ``recursive``, its sub-folders; hidden files and folders (``.*``)
    are skipped. Each file's stem is matched against ``pattern`` (see the module
    docstring); files that do not match are skipped with a warning listing them.

    Args:
        root: the dataset folder.
        pattern: regular expression with a named group ``subject`` and optionally
            ``capture``, matched against the file stem.
        metadata: optional per-subject CSV (see :func:`read_metadata`).
        meta_id_column: the CSV's subject-id column (default: its first column).
        meta_gender_column: the CSV's gender column (default: auto-detected).
        recursive: search sub-folders.
        check_images: open each image's header to catch unreadable files early.
        match_path: match ``pattern`` against the path relative to ``root`` without the
            suffix, POSIX separators (``0001/02``), instead of the stem — for layouts
            with one folder per subject.

    Returns:
        The dataset; samples sorted by relative path.

    Raises:
        FileNotFoundError: ``root`` or ``metadata`` missing.
        ValueError: bad pattern, no images, no file matching the pattern, an empty subject
            match, two files with the same subject and capture, bad metadata CSV.
        ImageError: an unreadable image (with ``check_images``).
    """
    root_p = Path(root)
    if not root_p.exists():
        raise FileNotFoundError(f"{shown_name(str(root_p))}: dataset folder not found")
    if not root_p.is_dir():
        raise ValueError(f"{shown_name(str(root_p))}: not a folder (a dataset is a folder of images)")
    root_p = root_p.resolve()
    check_utf8_path(root_p, "dataset folder")
    rx = compile_pattern(pattern)
    has_capture = "capture" in rx.groupindex

    files = list_images(root_p, recursive=recursive)
    if not files:
        where = "or its sub-folders " if recursive else ""
        raise ValueError(
            f"{root_p}: no image files found in the folder {where}"
            f"(looked for {', '.join(IMAGE_SUFFIXES)})"
        )

    samples: list[Sample] = []
    unmatched: list[str] = []
    seen: dict[tuple[str, str], str] = {}
    for f in files:
        rel = f.relative_to(root_p).as_posix()
        m = rx.match(rel.rsplit(".", 1)[0] if match_path else f.stem)
        if m is None:
            unmatched.append(rel)
            continue
        subject = m.group("subject")
        if not subject:
            raise ValueError(
                f"{f}: the pattern {pattern!r} matches an empty subject id; make the "
                "'subject' group match at least one character"
            )
        problem = id_problem(subject)
        if problem:
            raise ValueError(
                f"{f}: the subject id {shown_id(subject)} read from this file name "
                f"{problem}; rename the file or choose the id with --pattern"
            )
        capture = m.group("capture") if has_capture else None
        key = (subject, capture if capture is not None else rel)
        if key in seen:
            what = f"capture {capture!r}" if capture is not None else "no capture label"
            raise ValueError(
                f"{root_p}: {seen[key]} and {rel} both give subject {subject!r} with {what}; "
                "remove one or change the file-name pattern (--pattern) so each file has "
                "its own (subject, capture)"
            )
        seen[key] = rel
        if check_images:
            _check_header(f)
        samples.append(Sample(f, subject, capture))

    if unmatched:
        if not samples:
            raise ValueError(
                f"{root_p}: no file name matches the pattern {pattern!r} "
                f"(e.g. {_examples(unmatched)}); pass a pattern with a 'subject' group"
            )
        log.warning(
            "%s: %d image(s) skipped, their names do not match the pattern %r: %s",
            root_p, len(unmatched), pattern, _examples(unmatched),
        )

    params: dict[str, Any] = {"pattern": pattern, "recursive": recursive}
    if match_path:
        params["match_path"] = True
    if metadata is not None:
        meta = read_metadata(metadata, id_column=meta_id_column, gender_column=meta_gender_column)
        params.update(
            metadata=str(Path(metadata).resolve()),
            meta_id_column=meta_id_column,
            meta_gender_column=meta_gender_column,
        )
        subjects = {s.subject for s in samples}
        unknown = sorted(set(meta) - subjects)
        missing = sorted(subjects - set(meta))
        if not set(meta) & subjects:
            raise ValueError(
                f"{metadata}: no subject id in the metadata matches a subject of {root_p} "
                f"(metadata ids e.g. {_examples(sorted(meta))}; dataset subjects e.g. "
                f"{_examples(sorted(subjects))}); check --meta-id-column and --pattern"
            )
        if unknown:  # a dataset's own CSV beside a subset of its images: normal, a note
            log.info("%s", unused_metadata_note(meta, subjects, root_p))
        if missing:
            log.warning(
                "%s: %d subject(s) of %s have no metadata row: %s",
                metadata, len(missing), root_p, _examples(missing),
            )
        samples = [
            Sample(s.path, s.subject, s.capture, MappingProxyType(dict(meta.get(s.subject, {}))))
            for s in samples
        ]
    return Dataset(root_p, tuple(samples), "folder", params)
