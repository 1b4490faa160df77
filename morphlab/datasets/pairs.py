"""Contributor pairs: choosing them (protocols) and the pairs file.

A pair protocol picks, from one enrolment image per subject, unordered pairs of distinct
subjects (subject A, subject B). Every protocol is one function in :data:`STRATEGIES`
that returns *candidate* pairs in order of preference; :func:`make_pairs` then accepts
candidates greedily while each subject has been used fewer than ``per_subject`` times,
up to ``n_pairs`` (``per_subject=None``: no bound, every admissible pair of the
strategy). Built-in strategies:

- ``random``: all pairs of subjects in a random order (from ``seed``);
- ``same-gender``: the same, restricted to pairs whose metadata ``gender`` agree
  (subjects without a gender are left out, with a warning).
- ``similar``: the same-gender pairs (all pairs with ``same_gender=False``), most similar
  first under a face recognition system (option ``system``, default ``dlib-resnet``).

Adding a strategy is one decorated function::

    @register_strategy("similar")
    def _similar(samples, rng, *, system="dlib-resnet"):
        ...  # return [(i, j, similarity), ...], most similar first

A strategy returns ``(i, j)`` index pairs, or ``(i, j, score)`` triples when it ranks by
a score: the score of each chosen pair is written to the ``similarity`` column.

The pairs file is a CSV with the columns :data:`REQUIRED_COLUMNS` (and
``gender_a,gender_b`` when the genders are known, ``similarity`` when the strategy
ranked by one); image paths are relative to the dataset folder, POSIX separators::

    pair_id,subject_a,image_a,subject_b,image_b,gender_a,gender_b,similarity
    0001,017,neutral/017_03.jpg,004,neutral/004_03.jpg,male,male,0.957341

Next to it, ``<pairs file name>.json`` (e.g. ``pairs.csv.json``) records the protocol:
``dataset_dir`` (absolute), the loader and its parameters, ``protocol``, ``parameters``,
``seed``, ``morphlab_version`` and counts (``parameters`` holds every strategy option,
defaults included, e.g. the ``system`` of ``similar``; with a ``similarity`` column,
``similarity`` names the system and the score's direction). Both files are written atomically and are
byte-identical for the same dataset, protocol and seed.
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import logging
import os
import re
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from morphlab import __version__
from morphlab.datasets.folder import (
    ENROLMENT,
    Dataset,
    Sample,
    check_utf8_path,
    id_problem,
    read_csv_rows,
    shown_id,
)
from morphlab.io import atomic_write_text, sha256_file

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: Columns every pairs file has, in this order.
REQUIRED_COLUMNS = ("pair_id", "subject_a", "image_a", "subject_b", "image_b")
#: Columns a pairs file may add.
OPTIONAL_COLUMNS = ("gender_a", "gender_b", "similarity")
#: Significant digits kept of a similarity (in the pairs file and in :class:`Pair`).
_SIMILARITY_DIGITS = 6
#: The pairs file in a pairs folder (``morphlab pairs -o DIR`` writes ``DIR/pairs.csv``
#: and its protocol ``DIR/pairs.csv.json``; :func:`resolve_pairs_path`).
PAIRS_FILE = "pairs.csv"
#: Pair ids are used in file names.
PAIR_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]*$")
_MAX_LISTED = 10  # problems listed in one error message

#: A strategy: ``(samples, rng, **options) -> candidate (i, j) index pairs, best first``
#: (or ``(i, j, score)`` triples: the score goes to the pairs file's ``similarity`` column).
Strategy = Callable[..., Iterable[tuple]]
#: Pair strategies by name.
STRATEGIES: dict[str, Strategy] = {}


def register_strategy(name: str) -> Callable[[Strategy], Strategy]:
    """Register a pair strategy under ``name`` (a duplicate name raises)."""

    def deco(fn: Strategy) -> Strategy:
        if name in STRATEGIES:
            raise ValueError(f"pair strategy {name!r} is already registered")
        STRATEGIES[name] = fn
        return fn

    return deco


@register_strategy("random")
def _random(samples: Sequence[Sample], rng: np.random.Generator) -> list[tuple[int, int]]:
    """Every pair of subjects, in random order."""
    cand = list(combinations(range(len(samples)), 2))
    return [cand[k] for k in rng.permutation(len(cand))]


@register_strategy("same-gender")
def _same_gender(samples: Sequence[Sample], rng: np.random.Generator) -> list[tuple[int, int]]:
    """Pairs of subjects of the same (known) gender, in random order."""
    unknown = [s.subject for s in samples if not s.gender]
    if len(unknown) == len(samples):
        raise ValueError(
            "the same-gender strategy needs each subject's gender: give a metadata CSV "
            "with a gender column (--metadata FILE --meta-id-column C --meta-gender-column C)"
        )
    if unknown:
        log.warning(
            "same-gender: %d subject(s) without a gender left out: %s",
            len(unknown), ", ".join(unknown[:_MAX_LISTED]),
        )
    cand = [
        (i, j) for i, j in combinations(range(len(samples)), 2)
        if samples[i].gender and samples[i].gender == samples[j].gender
    ]
    return [cand[k] for k in rng.permutation(len(cand))]


@register_strategy("similar")
def _similar(samples: Sequence[Sample], rng: np.random.Generator, *,
             system: str = "dlib-resnet",
             same_gender: bool = True, jobs: int = 1) -> list[tuple[int, int, float]]:
    """Most similar pairs first under a face recognition system (same gender by default)."""
    from morphlab.recognition.similarity import pairwise_similarity

    cand = _same_gender(samples, rng) if same_gender else _random(samples, rng)
    sim = pairwise_similarity([s.path for s in samples], system=system, workers=jobs)
    cand = [(i, j, float(sim[i, j])) for i, j in cand if np.isfinite(sim[i, j])]
    return sorted(cand, key=lambda c: -c[2])  # stable: ties keep the random order


class PairsError(ValueError):
    """A pairs file that cannot be used; the message names the file and rows."""


@dataclass(frozen=True)
class Pair:
    """One contributor pair.

    Attributes:
        pair_id: unique, file-name safe (``[A-Za-z0-9][A-Za-z0-9.-]*``).
        subject_a, subject_b: subject ids.
        image_a, image_b: absolute image paths.
        gender_a, gender_b: when known.
        similarity: the score the strategy ranked the pair by (``similar``: the face
            recognition system's comparison score, higher = more similar), if any.
        line: line of the pairs file it was read from (``None`` if not read from a file).
    """

    pair_id: str
    subject_a: str
    image_a: Path
    subject_b: str
    image_b: Path
    gender_a: Optional[str] = None
    gender_b: Optional[str] = None
    line: Optional[int] = field(default=None, compare=False)
    similarity: Optional[float] = None


@dataclass(frozen=True)
class PairSet:
    """Pairs with the dataset folder their image paths are relative to.

    Attributes:
        pairs: in file order.
        dataset_dir: absolute.
        protocol: the protocol record (what the ``.json`` sidecar holds), ``{}`` if unknown.
        path: the pairs file it was read from / written to, if any.
    """

    pairs: tuple[Pair, ...]
    dataset_dir: Path
    protocol: Mapping[str, Any] = field(default_factory=dict)
    path: Optional[Path] = None

    def __len__(self) -> int:
        return len(self.pairs)


def sidecar_path(pairs_csv: PathLike) -> Path:
    """The protocol sidecar of a pairs file: ``pairs.csv`` → ``pairs.csv.json``."""
    p = Path(pairs_csv)
    return p.with_name(p.name + ".json")


def same_image(a: Path, b: Path, hashes: Optional[dict[Path, str]] = None) -> Optional[str]:
    """Whether two image files are one: ``"the same file"``, ``"the same content"`` or None.

    The same file is the same inode (a hard link, a symbolic link, ``a/../a.jpg``); the
    same content is equal sha256, computed only when the two sizes are equal (``hashes``
    caches it). A file that cannot be examined gives None: reading it will fail on its
    own, as that pair's failure.
    """
    try:
        if os.path.samefile(a, b):
            return "the same file"
        if os.path.getsize(a) != os.path.getsize(b):
            return None
        hashes = {} if hashes is None else hashes
        for f in (a, b):
            if f not in hashes:
                hashes[f] = sha256_file(f)
    except (OSError, ValueError):
        return None
    return "the same content" if hashes[a] == hashes[b] else None


# ----------------------------------------------------------------------------------------
# making pairs
# ----------------------------------------------------------------------------------------
def enrolment_samples(dataset: Dataset, capture: Optional[str] = None) -> list[Sample]:
    """One enrolment image per subject, sorted by subject.

    With ``capture``, the subject's sample with that capture label (subjects without one
    are left out, with a warning); without, the subject's first sample with role
    ``"enrolment"`` when the dataset declares roles (the FEI/ONOT/FRLL loaders do;
    subjects without one are left out, with a warning), else its first sample by path.
    """
    roles = capture is None and any(s.role == ENROLMENT for s in dataset.samples)
    out = []
    missing = []
    for subject, samples in dataset.by_subject().items():
        if capture is None and not roles:
            out.append(samples[0])
            continue
        chosen = [s for s in samples if (s.role == ENROLMENT if roles else s.capture == capture)]
        if chosen:
            out.append(chosen[0])
        else:
            missing.append(subject)
    if capture is not None and not out:
        labels = sorted({str(s.capture) for s in dataset.samples})
        raise ValueError(
            f"{dataset.root}: no image has capture label {capture!r}; labels found: "
            f"{', '.join(labels[:_MAX_LISTED])}"
        )
    if missing:
        log.warning(
            "%d subject(s) have no %s and are left out: %s", len(missing),
            "enrolment image" if roles else f"image with capture {capture!r}",
            ", ".join(missing[:_MAX_LISTED]),
        )
    return out


def make_pairs(
    dataset: Dataset,
    *,
    strategy: str = "random",
    per_subject: Optional[int] = 1,
    n_pairs: Optional[int] = None,
    seed: int = 0,
    capture: Optional[str] = None,
    jobs: int = 1,
    **options: Any,
) -> PairSet:
    """Choose contributor pairs from a dataset.

    Args:
        dataset: from :func:`morphlab.datasets.folder.load_folder` or a dedicated loader.
        strategy: a name in :data:`STRATEGIES`.
        per_subject: each subject contributes to at most this many pairs; ``None``: no
            bound (with ``n_pairs=None``, every admissible pair of the strategy).
        n_pairs: stop after this many pairs (default: as many as the bound allows).
        seed: the same dataset, parameters and seed give the same pairs.
        capture: capture label of the enrolment image (default: each subject's first).
        jobs: worker processes for a strategy that computes (``similar`` embeds the
            faces); passed to strategies with a ``jobs`` option. It is no protocol
            parameter: the pairs and the protocol are the same for every value.
        **options: passed to the strategy function (recorded with its defaults in the
            protocol's ``parameters``).

    Returns:
        The pairs (ids ``0001``, ``0002``… in the order chosen; which subject is A is
        itself random; ``similarity`` set when the strategy ranks by a score) and the
        protocol record.

    Raises:
        KeyError: unknown strategy.
        ValueError: bad bounds, fewer than two subjects, no pair possible.
    """
    if strategy not in STRATEGIES:
        raise KeyError(
            f"unknown pair strategy {strategy!r}; valid names: {', '.join(sorted(STRATEGIES))}"
        )
    if per_subject is not None and (not isinstance(per_subject, int) or per_subject < 1):
        raise ValueError(f"per_subject must be an integer >= 1 or None, got {per_subject!r}")
    if n_pairs is not None and (not isinstance(n_pairs, int) or n_pairs < 1):
        raise ValueError(f"n_pairs must be an integer >= 1, got {n_pairs!r}")
    samples = enrolment_samples(dataset, capture)
    if len(samples) < 2:
        raise ValueError(
            f"{dataset.root}: {len(samples)} subject(s) with an enrolment image; a pair "
            "needs two different subjects"
        )
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    options = {**_option_defaults(STRATEGIES[strategy]), **options}
    takes_jobs = _RUNTIME_OPTION in inspect.signature(STRATEGIES[strategy]).parameters
    extra = {_RUNTIME_OPTION: jobs} if takes_jobs else {}
    rng = np.random.default_rng(seed)
    bound = len(samples) if per_subject is None else per_subject
    uses = [0] * len(samples)
    chosen: list[tuple[int, int]] = []
    scores: list[Optional[float]] = []
    hashes: dict[Path, str] = {}
    identical: dict[frozenset, str] = {}  # pairs of subjects refused, with why
    for cand in STRATEGIES[strategy](samples, rng, **options, **extra):
        i, j = cand[0], cand[1]
        if i == j or uses[i] >= bound or uses[j] >= bound:
            continue
        same = same_image(samples[i].path, samples[j].path, hashes)
        if same:
            identical[frozenset((i, j))] = (
                f"{samples[i].subject} and {samples[j].subject} "
                f"({dataset.relpath(samples[i])}, {dataset.relpath(samples[j])}: {same})"
            )
            continue
        uses[i] += 1
        uses[j] += 1
        chosen.append((i, j))
        scores.append(float(cand[2]) if len(cand) > 2 else None)
        if n_pairs is not None and len(chosen) == n_pairs:
            break
    if identical:
        log.warning(
            "%s: %d candidate pair(s) refused, their two images are one image (a morph of "
            "an image with itself is no attack; remove the copies): %s",
            dataset.root, len(identical), "; ".join(list(identical.values())[:_MAX_LISTED]),
        )
    if not chosen:
        raise ValueError(f"strategy {strategy!r} found no pair among {len(samples)} subjects")
    if n_pairs is not None and len(chosen) < n_pairs:
        log.warning(
            "only %d pair(s) possible with strategy %r and per_subject=%s (asked for %d)",
            len(chosen), strategy, per_subject, n_pairs,
        )
    swap = rng.random(len(chosen)) < 0.5
    width = max(4, len(str(len(chosen))))
    pairs = []
    for k, ((i, j), sw, score) in enumerate(zip(chosen, swap, scores), start=1):
        a, b = (samples[j], samples[i]) if sw else (samples[i], samples[j])
        pairs.append(Pair(
            f"{k:0{width}d}", a.subject, a.path, b.subject, b.path, a.gender, b.gender,
            similarity=None if score is None else float(f"{score:.{_SIMILARITY_DIGITS}g}"),
        ))
    protocol = {
        "format": "morphlab-pairs",
        "format_version": 1,
        "dataset_dir": str(dataset.root),
        "dataset": {"loader": dataset.loader, "params": dict(dataset.params)},
        "protocol": strategy,
        "parameters": {
            "per_subject": per_subject,
            "n_pairs": n_pairs,
            "capture": capture,
            **options,
        },
        "seed": seed,
        "morphlab_version": __version__,
        "counts": {
            "samples": len(dataset.samples),
            "subjects": len(dataset.subjects()),
            "enrolment_subjects": len(samples),
            "subjects_used": sum(u > 0 for u in uses),
            "pairs": len(pairs),
        },
    }
    if any(sc is not None for sc in scores):
        protocol["similarity"] = {
            "column": "similarity",
            "system": options.get("system"),
            "direction": "higher = more similar",
        }
    return PairSet(tuple(pairs), dataset.root, protocol)


#: A strategy option that changes how fast, not which pairs: never in the protocol.
_RUNTIME_OPTION = "jobs"


def _option_defaults(fn: Strategy) -> dict[str, Any]:
    """The keyword-only options of a strategy function with their defaults (but ``jobs``)."""
    return {
        name: prm.default for name, prm in inspect.signature(fn).parameters.items()
        if prm.kind is inspect.Parameter.KEYWORD_ONLY and prm.default is not inspect.Parameter.empty
        and name != _RUNTIME_OPTION
    }


# ----------------------------------------------------------------------------------------
# the pairs file
# ----------------------------------------------------------------------------------------
def _relpath(path: Path, root: Path) -> str:
    rel = os.path.relpath(path, root)
    if rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel):
        raise ValueError(f"{path}: not inside the dataset folder {root}")
    return Path(rel).as_posix()


def resolve_pairs_path(path: PathLike) -> Path:
    """The pairs file ``path`` names: a folder (``morphlab pairs -o DIR``) → its
    :data:`PAIRS_FILE`; anything else is returned as it is.

    Raises:
        FileNotFoundError: a folder without a pairs file.
    """
    p = Path(path)
    if not p.is_dir():
        return p
    f = p / PAIRS_FILE
    if not f.is_file():
        raise FileNotFoundError(
            f"{p}: folder without a pairs file {PAIRS_FILE}; pass the pairs CSV itself, or "
            f"the folder `morphlab pairs ... -o {p}` wrote"
        )
    return f


def write_pairs(pairset: PairSet, path: PathLike) -> Path:
    """Write ``pairset`` to a pairs CSV and its protocol sidecar, atomically.

    Returns:
        The sidecar's path.
    """
    out = Path(path)
    with_gender = any(p.gender_a or p.gender_b for p in pairset.pairs)
    with_similarity = any(p.similarity is not None for p in pairset.pairs)
    cols = (REQUIRED_COLUMNS + (("gender_a", "gender_b") if with_gender else ())
            + (("similarity",) if with_similarity else ()))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for p in pairset.pairs:
        row = [
            p.pair_id, p.subject_a, _relpath(p.image_a, pairset.dataset_dir),
            p.subject_b, _relpath(p.image_b, pairset.dataset_dir),
        ]
        if with_gender:
            row += [p.gender_a or "", p.gender_b or ""]
        if with_similarity:
            row.append("" if p.similarity is None else f"{p.similarity:.{_SIMILARITY_DIGITS}g}")
        w.writerow(row)
    atomic_write_text(out, buf.getvalue())
    side = sidecar_path(out)
    atomic_write_text(side, json.dumps(dict(pairset.protocol), indent=2, sort_keys=True) + "\n")
    log.info("wrote %d pairs to %s (protocol: %s)", len(pairset), out, side)
    return side


def _inside(path: str, root: Path) -> Optional[Path]:
    """``root / path`` normalised (no symlinks followed), or None if it leaves ``root``."""
    full = Path(os.path.normpath(os.path.join(root, path)))
    try:
        full.relative_to(root)
    except ValueError:
        return None
    return full


def _not_a_file(path: Path) -> Optional[str]:
    """Why ``path`` is not an image file one can open, or None (checked before computing)."""
    if "\x00" in str(path):
        return "contains a NUL byte"
    too_long = [part for part in path.parts if len(os.fsencode(part)) > 255]
    if too_long:
        return f"has a name of {len(os.fsencode(too_long[0]))} bytes (the limit is 255)"
    try:
        if path.is_file():
            return None
        if path.is_dir():
            return "is a folder, not an image file,"
        return "not found" if not os.path.lexists(path) else "is not a regular file"
    except OSError as exc:
        return f"cannot be examined ({exc.strerror})"


def read_pairs(
    path: PathLike,
    *,
    dataset_dir: Optional[PathLike] = None,
    allow_same_identity: bool = False,
) -> PairSet:
    """Read and validate a pairs CSV.

    The dataset folder the image paths are relative to is ``dataset_dir`` when given,
    else the ``dataset_dir`` of the sidecar ``<file>.json`` when there is one, else the
    pairs file's own folder.

    Checks: the header has every required column and no unknown one; every row has a
    value in each required column, a file-name-safe unique ``pair_id``, ids without NUL
    bytes, line breaks or control characters and at most
    :data:`~morphlab.datasets.folder.MAX_ID_BYTES` bytes long (morph file names are made
    of them), two different subjects (unless ``allow_same_identity``), image paths that
    stay inside the dataset folder (``..`` or absolute paths leading elsewhere are
    refused; symlinks are not followed) and exist, two images that are not one image
    (the same file, or the same content by sha256 — never allowed); no two rows hold the
    same unordered pair of images.

    Args:
        path: the pairs CSV, or the folder holding it as ``pairs.csv``
            (:func:`resolve_pairs_path`).
        dataset_dir: the folder its image paths are relative to (see above).
        allow_same_identity: accept pairs whose two subjects are the same identity
            (two images of one person), for studies that need them.

    Raises:
        FileNotFoundError: the pairs file or the dataset folder is missing.
        PairsError: (a ValueError) any problem above; the message names the file and
            the line of each problem (up to 10 listed).
    """
    p = resolve_pairs_path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: pairs file not found")
    protocol: dict[str, Any] = {}
    side = sidecar_path(p)
    if side.is_file():
        try:
            protocol = json.loads(side.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PairsError(f"{side}: not a valid protocol file ({exc})") from None
        except RecursionError:
            raise PairsError(f"{side}: not a valid protocol file (JSON nested too deeply)") from None
        if not isinstance(protocol, dict):
            raise PairsError(f"{side}: not a valid protocol file (expected a JSON object)")
    if dataset_dir is not None:
        root = Path(dataset_dir)
        origin = "the dataset folder given"
    elif protocol.get("dataset_dir"):
        root = Path(protocol["dataset_dir"])
        origin = f"the dataset_dir of {side}"
    else:
        root = p.parent
        origin = "the pairs file's folder"
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root}: dataset folder not found ({origin}); pass the folder the image paths "
            "of the pairs file are relative to (--dataset-dir)"
        )
    root = Path(os.path.abspath(root))
    try:
        check_utf8_path(root, "dataset folder")
    except ValueError as exc:
        raise PairsError(f"{p}: {exc}") from None

    rows = iter(read_csv_rows(p, "pairs file", PairsError))
    header = next(rows, (1, None))[1]
    if not header or not any(h.strip() for h in header):
        raise PairsError(f"{p}: empty pairs file (expected the header {','.join(REQUIRED_COLUMNS)})")
    cols = [h.strip() for h in header]
    allowed = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
    unknown = [c for c in cols if c not in allowed]
    missing = [c for c in REQUIRED_COLUMNS if c not in cols]
    dup_cols = sorted({c for c in cols if cols.count(c) > 1})
    problems = []
    if unknown:
        problems.append(f"unknown column(s) {', '.join(map(repr, unknown))}")
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if dup_cols:
        problems.append(f"repeated column(s) {', '.join(dup_cols)}")
    if problems:
        raise PairsError(
            f"{p}, line 1: {'; '.join(problems)}; a pairs file has the columns "
            f"{','.join(REQUIRED_COLUMNS)} and optionally {','.join(OPTIONAL_COLUMNS)}"
        )
    idx = {c: cols.index(c) for c in cols}

    pairs: list[Pair] = []
    errors: list[str] = []
    missing_files = False
    ids: dict[str, int] = {}
    seen: dict[frozenset, int] = {}
    hashes: dict[Path, str] = {}
    for line, row in rows:
        if not any(v.strip() for v in row):
            continue
        if len(row) != len(cols):
            errors.append(f"line {line}: {len(row)} fields, the header has {len(cols)}")
            continue
        v = {c: row[i].strip() for c, i in idx.items()}
        empty = [c for c in REQUIRED_COLUMNS if not v[c]]
        if empty:
            errors.append(f"line {line}: empty {', '.join(empty)}")
            continue
        pid = v["pair_id"]
        bad_ids = [(c, id_problem(v[c])) for c in ("pair_id", "subject_a", "subject_b")]
        bad_ids = [(c, why) for c, why in bad_ids if why]
        for c, why in bad_ids:
            errors.append(f"line {line}: {c} {shown_id(v[c])} {why}")
        if bad_ids:
            continue
        if not PAIR_ID_RE.fullmatch(pid):
            errors.append(
                f"line {line}: pair_id {pid!r} is not file-name safe (letters, digits, '.', '-')"
            )
        elif pid in ids:
            errors.append(f"line {line}: pair_id {pid!r} already used on line {ids[pid]}")
        else:
            ids[pid] = line
        if v["subject_a"] == v["subject_b"] and not allow_same_identity:
            errors.append(
                f"line {line}: subject_a and subject_b are both {v['subject_a']!r} "
                f"(pair {pid!r}: the same identity; allow it explicitly with "
                "--allow-same-identity for a study that needs such pairs)"
            )
        images = []
        for col in ("image_a", "image_b"):
            full = _inside(v[col], root)
            if full is None:
                errors.append(
                    f"line {line}: {col} {v[col]!r} points outside the dataset folder {root}; "
                    "refused"
                )
            else:
                problem = _not_a_file(full)
                if problem:
                    errors.append(f"line {line}: {col} {shown_id(v[col])} {problem} in {root}")
                    missing_files = missing_files or problem == "not found"
                    full = None
            images.append(full)
        if None in images:
            continue
        same = same_image(images[0], images[1], hashes)
        if same:
            errors.append(
                f"line {line}: image_a {v['image_a']!r} and image_b {v['image_b']!r} "
                f"are {same} (pair {pid!r}); a morph needs two different images"
            )
            continue
        key = frozenset(images)
        if key in seen:
            errors.append(f"line {line}: duplicate of line {seen[key]} (same two images)")
            continue
        seen[key] = line
        similarity = None
        if v.get("similarity"):
            try:
                similarity = float(v["similarity"])
            except ValueError:
                similarity = float("nan")
            if not np.isfinite(similarity):
                errors.append(
                    f"line {line}: similarity {shown_id(v['similarity'])} is not a finite number"
                )
                continue
        pairs.append(
            Pair(
                pid, v["subject_a"], images[0], v["subject_b"], images[1],
                v.get("gender_a") or None, v.get("gender_b") or None, line, similarity,
            )
        )
    if errors:
        more = f"\n  … and {len(errors) - _MAX_LISTED} more" if len(errors) > _MAX_LISTED else ""
        hint = f"\n(image paths are relative to {root}, {origin})" if missing_files else ""
        raise PairsError(
            f"{p}: {len(errors)} problem(s):\n  " + "\n  ".join(errors[:_MAX_LISTED]) + more + hint
        )
    if not pairs:
        raise PairsError(f"{p}: no pairs (only a header)")
    return PairSet(tuple(pairs), root, protocol, p)
