"""MAP from score files: the format of the MAP authors' reference implementation.

Ferrara, Franco, Maltoni and Busch ("Morphing Attack Potential", IWBF 2022) publish a
reference implementation that computes MAP from one text file per face recognition (FR)
system. This module reads and validates that format, turns it into the
:class:`~morphlab.reports.map_report.MapScores` that ``morphlab map-score`` reports from,
and writes it from an image-path study, so studies can be exchanged with FR systems that
run elsewhere (commercial SDKs).

The format
    ``DIR/<system>.txt``, one per FR system; each line is one contributing subject of one
    morph::

        morphID  subjectID  score1  score2 … scoreN

    fields separated by whitespace (the reference implementation splits on tabs; morphlab
    reads any whitespace and writes tabs), the scores those of the morph against each of
    that subject's N probe images (the verification attempts). ``FRS_INFO`` is a JSON
    object ``{"<system>": [threshold, is_similarity], …}``.

Score direction and tie rule (as in the reference implementation)
    a similarity score is accepted when ``score > threshold``, a dissimilarity (distance)
    when ``score < threshold`` — **strict** inequalities. morphlab accepts similarities
    with ``score >= threshold`` (:mod:`morphlab.metrics.map`), so the conversion is exact:
    similarities keep their value and get the threshold ``nextafter(t, +inf)``;
    dissimilarities are negated and get ``nextafter(-t, +inf)``. The writer goes the other
    way: morphlab's similarities with ``is_similarity = true`` and the threshold
    ``nextafter(t, -inf)``, so ``score > threshold`` takes exactly the decisions of
    ``score >= t``.

A failed comparison (the probe or the morph could not be processed by that system) is an
attempt that exists and is rejected: it is written as ``-inf`` for a similarity
(``+inf`` for a dissimilarity), which the reference rule rejects for every threshold, and
read back as morphlab's rejected attempt (NaN score within the subject's attempt count).
A morph whose every comparison failed under a system is that system's failure to enrol
(FTE): left out of the conditional MAP, a failed attack in the unconditional one — as on
the image path.

Validation: a file or line that cannot be read is one error naming the file and line
(non-numeric, NaN score, an infinity that would accept every threshold, missing scores,
a (morph, subject) given twice);
a system in ``FRS_INFO`` without a file, or a file without an entry, is an error; across
systems, every morph, every subject of a morph and every attempt count of a (morph,
subject) must agree — all disagreements are listed in one :class:`ScoreFileError`, never
repaired. Every morph must have the same number of contributing subjects.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional, Sequence, Union

import numpy as np

from morphlab import __version__
from morphlab.io import atomic_write_text, sha256_file
from morphlab.reports.map_report import MapScores

if TYPE_CHECKING:  # pragma: no cover
    from morphlab.mapscore import MapScoreResult

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: File name of the systems' thresholds that :func:`write_score_files` writes.
FRS_INFO_NAME = "frs_info.json"
#: Suffix of one system's score file.
SCORE_SUFFIX = ".txt"
#: The group every morph read from score files belongs to (the format has no groups).
GROUP = "external"
#: At most this many inconsistencies are spelled out in one error (the count is exact).
_LISTED = 25


class ScoreFileError(ValueError):
    """A score folder or frs-info file cannot be used; the message names file and problem."""


@dataclass(frozen=True)
class SystemInfo:
    """One entry of an frs-info file.

    Attributes:
        name: the system's name (its score file is ``<name>.txt``).
        threshold: the threshold on the system's native scale.
        is_similarity: ``True``: accept ``score > threshold``; ``False`` (distances):
            accept ``score < threshold``.
    """

    name: str
    threshold: float
    is_similarity: bool

    def accepts(self, score: float) -> bool:
        """The reference implementation's decision (strict inequality)."""
        return score > self.threshold if self.is_similarity else score < self.threshold


@dataclass
class ScoreSet:
    """A validated, consistent score folder.

    Attributes:
        systems: frs-info entries, in the order of the frs-info file.
        morphs: morph ids, in the order of the first system's file.
        subjects: per morph id, its subject ids in the order of the first system's file.
        scores: per system name, ``{(morph id, subject id): [native scores…]}``.
        files: per system name, its score file.
        frs_info: the frs-info file.
    """

    systems: list[SystemInfo]
    morphs: list[str]
    subjects: dict[str, list[str]]
    scores: dict[str, dict[tuple[str, str], list[float]]]
    files: dict[str, Path]
    frs_info: Path


# ----------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------
def _check_system_name(name: str, where: str) -> None:
    if (not name or name != name.strip() or name in (".", "..") or "/" in name
            or "\\" in name or "\0" in name or name.startswith(".")):
        raise ScoreFileError(
            f"{where}: system name {name!r} cannot name a score file <system>{SCORE_SUFFIX} "
            "(no path separators, no leading dot or surrounding spaces)")


def read_frs_info(path: PathLike) -> list[SystemInfo]:
    """Read an frs-info JSON file ``{"<system>": [threshold, is_similarity], …}``.

    ``is_similarity`` is JSON ``true``/``false`` (``1``/``0`` are accepted too, as the
    reference implementation tests its truth value); the threshold is a finite number.

    Raises:
        FileNotFoundError: no such file.
        ScoreFileError: not JSON, not an object, empty, a duplicated system or a
            malformed entry (the message names the system).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: frs-info file not found (a JSON object "
                                '{"<system>": [threshold, is_similarity], …})')

    def pairs(items):
        seen = Counter(k for k, _ in items)
        dup = [k for k, n in seen.items() if n > 1]
        if dup:
            raise ScoreFileError(f"{p}: system {dup[0]!r} is given more than once")
        return dict(items)

    try:
        data = json.loads(p.read_text(encoding="utf-8-sig"), object_pairs_hook=pairs)
    except UnicodeDecodeError as exc:
        raise ScoreFileError(f"{p}: not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise ScoreFileError(f"{p}: not valid JSON (line {exc.lineno}, column {exc.colno}: "
                             f"{exc.msg})") from None
    if not isinstance(data, dict):
        raise ScoreFileError(f"{p}: expected a JSON object "
                             '{"<system>": [threshold, is_similarity], …}, got '
                             f"{type(data).__name__}")
    if not data:
        raise ScoreFileError(f"{p}: no system listed")
    out = []
    for name, entry in data.items():
        _check_system_name(name, str(p))
        form = f"{p}: system {name!r}: expected [threshold, is_similarity]"
        if not isinstance(entry, list) or len(entry) != 2:
            raise ScoreFileError(f"{form}, got {json.dumps(entry)}")
        thr, sim = entry
        if isinstance(thr, bool) or not isinstance(thr, (int, float)):
            raise ScoreFileError(f"{form}; the threshold {json.dumps(thr)} is not a number")
        if not math.isfinite(thr):
            raise ScoreFileError(f"{form}; the threshold {thr} is not a finite number")
        if not (isinstance(sim, bool) or (isinstance(sim, int) and sim in (0, 1))):
            raise ScoreFileError(f"{form}; is_similarity {json.dumps(sim)} is not true or "
                                 "false")
        out.append(SystemInfo(name, float(thr), bool(sim)))
    return out


def read_score_file(path: PathLike, is_similarity: Optional[bool] = None
                    ) -> dict[tuple[str, str], list[float]]:
    """Read one system's score file.

    Args:
        path: the ``<system>.txt`` file.
        is_similarity: the system's score direction; with it, the infinity that no
            threshold accepts (``-inf`` for similarities, ``+inf`` for distances) is a
            failed comparison (a rejected attempt). Without it, every infinity is an error.

    Returns:
        ``{(morph id, subject id): [scores…]}`` in file order (blank lines are ignored).

    Raises:
        FileNotFoundError: no such file.
        ScoreFileError: ``file:line`` and the problem — fewer than three fields, a score
            that is not a number, NaN, an infinity that would accept every threshold, a
            (morph, subject) given twice, or no line at all.
    """
    failed = None if is_similarity is None else (-math.inf if is_similarity else math.inf)
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: score file not found")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ScoreFileError(f"{p}: not UTF-8 text ({exc.reason})") from None
    out: dict[tuple[str, str], list[float]] = {}
    first_line: dict[tuple[str, str], int] = {}
    for num, line in enumerate(text.split("\n"), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{p}:{num}"
        if len(fields) < 3:
            raise ScoreFileError(
                f"{where}: expected 'morphID subjectID score1 … scoreN', got "
                f"{len(fields)} field(s)")
        key = (fields[0], fields[1])
        if key in out:
            raise ScoreFileError(f"{where}: morph {key[0]!r}, subject {key[1]!r} is already "
                                 f"on line {first_line[key]}")
        scores = []
        for i, tok in enumerate(fields[2:], start=1):
            try:
                v = float(tok)
            except ValueError:
                raise ScoreFileError(f"{where}: score {i} {tok!r} is not a number") from None
            if math.isnan(v):
                raise ScoreFileError(f"{where}: score {i} is NaN; every attempt needs a "
                                     "score (leave a failed attempt out of the line)")
            if math.isinf(v) and v != failed:
                raise ScoreFileError(
                    f"{where}: score {i} {tok!r} is not a finite number"
                    + ("" if failed is None else f" (only {failed} marks a failed comparison "
                       "of this system; it is always rejected)"))
            scores.append(v)
        out[key] = scores
        first_line[key] = num
    if not out:
        raise ScoreFileError(f"{p}: no score lines")
    return out


def _listing(problems: Sequence[str]) -> str:
    shown = "\n".join(f"  - {x}" for x in problems[:_LISTED])
    more = len(problems) - _LISTED
    return shown + (f"\n  … and {more} more" if more > 0 else "")


def read_score_folder(scores_dir: PathLike, frs_info: PathLike) -> ScoreSet:
    """Read and cross-check a score folder and its frs-info file.

    Args:
        scores_dir: folder with one ``<system>.txt`` per system of ``frs_info``.
        frs_info: the frs-info JSON file (may lie inside ``scores_dir``).

    Raises:
        FileNotFoundError: no such folder or frs-info file.
        ScoreFileError: a file that cannot be read (see :func:`read_score_file`), systems
            and files that do not match, or inconsistencies between systems (all listed).
    """
    d = Path(scores_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: score folder not found (one <system>{SCORE_SUFFIX} "
                                "per face recognition system)")
    info_path = Path(frs_info)
    systems = read_frs_info(info_path)
    names = [s.name for s in systems]
    info_res = info_path.resolve()
    present = {p.stem for p in d.iterdir()
               if p.suffix == SCORE_SUFFIX and p.is_file() and p.resolve() != info_res}
    no_file = [n for n in names if n not in present]
    no_entry = sorted(present - set(names))
    if no_file or no_entry:
        parts = []
        if no_file:
            parts.append(f"system(s) in {info_path.name} without a score file: "
                         + ", ".join(f"{n}{SCORE_SUFFIX}" for n in no_file))
        if no_entry:
            parts.append(f"score file(s) without an entry in {info_path.name}: "
                         + ", ".join(f"{n}{SCORE_SUFFIX}" for n in no_entry))
        raise ScoreFileError(f"{d}: " + "; ".join(parts)
                             + " (every system needs both: its file and [threshold, "
                             "is_similarity])")
    files = {n: d / f"{n}{SCORE_SUFFIX}" for n in names}
    scores = {s.name: read_score_file(files[s.name], s.is_similarity) for s in systems}

    # -- consistency across systems: morphs, subjects per morph, attempts per subject
    def fname(n: str) -> str:
        return files[n].name

    per_sys_morphs = {n: list(dict.fromkeys(m for m, _ in scores[n])) for n in names}
    all_morphs = list(dict.fromkeys(m for n in names for m in per_sys_morphs[n]))
    morph_sets = {n: set(v) for n, v in per_sys_morphs.items()}
    problems: list[str] = []
    complete = []
    for m in all_morphs:
        lacking = [n for n in names if m not in morph_sets[n]]
        if lacking:
            problems.append(f"morph {m!r}: missing in {', '.join(map(fname, lacking))} "
                            f"(present in {', '.join(fname(n) for n in names if n not in lacking)})")
        else:
            complete.append(m)
    subj: dict[str, dict[str, list[str]]] = {n: {} for n in names}
    for n in names:
        for m, s in scores[n]:
            subj[n].setdefault(m, []).append(s)
    subjects: dict[str, list[str]] = {}
    for m in complete:
        union = list(dict.fromkeys(s for n in names for s in subj[n][m]))
        for s in union:
            lacking = [n for n in names if s not in subj[n][m]]
            if lacking:
                problems.append(f"morph {m!r}, subject {s!r}: missing in "
                                f"{', '.join(map(fname, lacking))}")
                continue
            counts = {n: len(scores[n][(m, s)]) for n in names}
            if len(set(counts.values())) > 1:
                problems.append(f"morph {m!r}, subject {s!r}: unequal attempt counts: "
                                + ", ".join(f"{c} in {fname(n)}" for n, c in counts.items()))
        subjects[m] = subj[names[0]][m]
    if not problems:
        n_sub = Counter(len(v) for v in subjects.values())
        usual = n_sub.most_common(1)[0][0]
        for m, v in subjects.items():
            if len(v) != usual:
                problems.append(f"morph {m!r} has {len(v)} contributing subject(s) "
                                f"({', '.join(v)}); the other morphs have {usual}")
    if problems:
        raise ScoreFileError(
            f"{d}: the score files are inconsistent ({len(problems)} problem(s)); fix the "
            f"files, morphlab does not guess:\n{_listing(problems)}")
    return ScoreSet(systems=systems, morphs=per_sys_morphs[names[0]], subjects=subjects,
                    scores=scores, files=files, frs_info=info_path)


# ----------------------------------------------------------------------------------------
# to the report's data
# ----------------------------------------------------------------------------------------
def _external_point(threshold: float):
    from morphlab.metrics.thresholds import fixed

    return replace(fixed(threshold), policy="external")


def to_map_scores(ss: ScoreSet) -> MapScores:
    """The :class:`MapScores` of a score set, on morphlab's scale (similarity, ``>=``).

    Similarities keep their values, distances are negated; each threshold becomes
    ``nextafter`` of the (negated) native threshold towards ``+inf`` so that ``>=`` takes
    the reference implementation's strict decisions. A failed comparison becomes a NaN
    score within the subject's attempts (a rejected attempt); a morph with every
    comparison failed under a system is not embedded by it (FTE). The operating points
    are given (policy ``"external"``; no calibration, so no FMR/FNMR).
    """
    M = len(ss.morphs)
    S = len(ss.subjects[ss.morphs[0]])
    first = ss.scores[ss.systems[0].name]
    attempts = np.array([[len(first[(m, s)]) for s in ss.subjects[m]] for m in ss.morphs],
                        dtype=int)  # (M, S), the same under every system
    A = int(attempts.max())
    C = len(ss.systems)
    arr = np.full((M, S, A, C), np.nan)
    for c, sys_ in enumerate(ss.systems):
        sign = 1.0 if sys_.is_similarity else -1.0
        table = ss.scores[sys_.name]
        for i, m in enumerate(ss.morphs):
            for j, s in enumerate(ss.subjects[m]):
                v = sign * np.asarray(table[(m, s)], dtype=np.float64)
                arr[i, j, :v.size, c] = np.where(np.isinf(v), np.nan, v)  # -inf: failed
    exists = np.arange(A)[None, None, :] < attempts[:, :, None]  # (M, S, A)
    embedded = ~(np.isnan(arr) | ~exists[..., None]).all(axis=(1, 2))  # (M, C)
    ops, systems = [], []
    for sys_ in ss.systems:
        t = sys_.threshold if sys_.is_similarity else -sys_.threshold
        ops.append(_external_point(float(np.nextafter(t, np.inf))))
        path = ss.files[sys_.name]
        systems.append({
            "name": sys_.name,
            "label": sys_.name,
            "version": "external score file",
            "default_threshold": None,
            "score": ("similarity as given (higher = more similar)" if sys_.is_similarity
                      else "dissimilarity as given, negated (morphlab score = -distance)"),
            "native_threshold": sys_.threshold,
            "native_rule": ("accept score > threshold" if sys_.is_similarity
                            else "accept score < threshold"),
            "score_file": str(path.resolve()),
            "score_file_sha256": sha256_file(path),
        })
    failed = exists[..., None] & np.isnan(arr)
    counts = {
        "morphs_read": M,
        "morphs_used": M,
        "morphs_fte": int((~embedded.all(axis=1)).sum()),
        "morphs_skipped": 0,
        "pairs_failed_in_generation": 0,
        "subjects": len({s for m in ss.morphs for s in ss.subjects[m]}),
        "attempts_per_subject_max": A,
        "attempts_per_subject_min": int(attempts.min()),
        "failed_comparisons": {s.name: int(failed[..., c].sum())
                               for c, s in enumerate(ss.systems)},
        "score_lines": {n: len(v) for n, v in ss.scores.items()},
    }
    settings = {
        "source": "score files (format of the MAP authors' reference implementation)",
        "scores": str(Path(ss.files[ss.systems[0].name]).parent.resolve()),
        "frs_info": str(ss.frs_info.resolve()),
        "frs_info_sha256": sha256_file(ss.frs_info),
        "calibration": "none: thresholds given in the frs-info file",
        "morphlab_version": __version__,
    }
    skipped = [{"what": ss.morphs[i],
                "reason": f"failure to enrol: every comparison failed under {ss.systems[c].name}; "
                          "left out of the conditional MAP, a failed attack in the "
                          "unconditional one"}
               for i, c in np.argwhere(~embedded)]
    return MapScores(
        systems=systems,
        operating_points=ops,
        morphs=[{"file": m, "group": GROUP, "pair_id": "", "subject_ids": list(ss.subjects[m])}
                for m in ss.morphs],
        probes=[[[f"{s}#{a + 1}" for a in range(len(first[(m, s)]))] for s in ss.subjects[m]]
                for m in ss.morphs],
        scores=arr,
        calibration={s.name: {"genuine": [], "impostor": []} for s in ss.systems},
        settings=settings,
        counts=counts,
        skipped=skipped,
        attempts=attempts,
        embedded=embedded,
    )


# ----------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------
def _strict_threshold(t: float) -> float:
    """The largest threshold ``u`` with ``s > u`` ⇔ ``s >= t`` for every finite ``s``."""
    if t == -math.inf:
        return -float(np.finfo(np.float64).max)  # rejects only the lowest finite float
    if t == math.inf:
        return float(np.finfo(np.float64).max)
    return float(np.nextafter(t, -np.inf))


def _score_lines(data: MapScores) -> tuple[dict[str, str], dict[str, list]]:
    """Per system label, the text of its score file; and the frs-info object."""
    labels = data.labels
    problems: list[str] = []
    for label in labels:
        try:
            _check_system_name(label, "system")
        except ScoreFileError as exc:
            problems.append(str(exc))
        if any(ch.isspace() for ch in label):
            problems.append(f"system {label!r}: contains whitespace")
    seen: set[tuple[str, str]] = set()
    for morph in data.morphs:
        ids = [str(morph["file"])] + [str(s) for s in morph["subject_ids"]]
        for x in ids:
            if not x or any(ch.isspace() for ch in x):
                problems.append(f"id {x!r} (morph {morph['file']!r}) is empty or contains "
                                "whitespace; the format separates fields by whitespace")
        for s in ids[1:]:
            key = (ids[0], s)
            if key in seen:
                problems.append(f"morph {ids[0]!r}, subject {s!r} occurs twice")
            seen.add(key)
    scores = np.asarray(data.scores, dtype=np.float64)
    exists = data.valid()[..., 0]  # (M, S, A): the attempts, the same under every system
    if np.isposinf(scores).any():
        m, s, a, c = np.argwhere(np.isposinf(scores))[0]
        problems.append(f"morph {data.morphs[m]['file']!r}, subject "
                        f"{data.morphs[m]['subject_ids'][s]!r}, {labels[c]}: score "
                        f"{scores[m, s, a, c]} is not finite")
    for m, s in np.argwhere(exists.sum(axis=2) == 0):
        problems.append(f"morph {data.morphs[m]['file']!r}, subject "
                        f"{data.morphs[m]['subject_ids'][s]!r}: no attempt")
    if problems:
        raise ScoreFileError(
            f"cannot write these scores as score files ({len(problems)} problem(s)):\n"
            + _listing(sorted(set(problems), key=problems.index)))
    texts = {}
    for c, label in enumerate(labels):
        lines = []
        for m, morph in enumerate(data.morphs):
            for s, sid in enumerate(morph["subject_ids"]):
                v = scores[m, s, exists[m, s], c]
                lines.append("\t".join([str(morph["file"]), str(sid)] + [
                    "-inf" if not math.isfinite(x) else repr(float(x)) for x in v]))
        texts[label] = "\n".join(lines) + "\n"
    info = {label: [_strict_threshold(float(t)), True]
            for label, t in zip(labels, data.thresholds)}
    return texts, info


def write_score_files(data: MapScores, folder: PathLike, *, overwrite: bool = False,
                      inputs: Optional[Mapping[str, Optional[PathLike]]] = None) -> list[Path]:
    """Write ``data`` as ``folder/<system>.txt`` + ``folder/frs_info.json``.

    Scores are morphlab's similarities (``is_similarity`` true) with the threshold
    ``nextafter(t, -inf)``, so the reference rule ``score > threshold`` takes the same
    decisions as morphlab's ``score >= t``; fields are tab-separated (the reference
    implementation splits on tabs). Every attempt that exists is written; one the system
    could not score (NaN: probe or morph not embedded) as ``-inf``, rejected by every
    threshold.

    Args:
        data: the scores of a study (e.g. the image path of ``map-score``).
        folder: the score folder (created, locked while written).
        overwrite: replace a previous score folder morphlab wrote.
        inputs: ``{"description": path}`` the folder must be disjoint from.

    Returns:
        The files written.

    Raises:
        ScoreFileError: an id with whitespace, a label that cannot name a file, a
            ``+inf`` score, a subject without attempts (all listed).
        ValueError: ``folder`` overlaps an input.
        ForeignFileError, OutputExistsError: see :func:`morphlab.outdir.check_outputs`;
            also a ``.txt`` file morphlab did not write (it would read as a system).
    """
    from morphlab.outdir import (
        ForeignFileError,
        check_disjoint,
        check_outputs,
        foreign_entries,
        locked_folder,
        owned_files,
        record_owned,
        remove_owned,
    )

    folder = Path(folder)
    if inputs:
        check_disjoint(folder, inputs)
    texts, info = _score_lines(data)
    rel = [f"{label}{SCORE_SUFFIX}" for label in texts] + [FRS_INFO_NAME]
    with locked_folder(folder):
        check_outputs(folder, rel, overwrite=overwrite)
        stray = [x for x in foreign_entries(folder)
                 if x.endswith(SCORE_SUFFIX) and "/" not in x and x not in rel]
        if stray:
            raise ForeignFileError(
                f"{folder}: holds {', '.join(stray[:5])}{' …' if len(stray) > 5 else ''}, "
                "which morphlab did not write; a score folder must hold only its systems' "
                "files (move them away or choose another folder)")
        stale = [x for x in owned_files(folder)
                 if x.endswith(SCORE_SUFFIX) and "/" not in x and x not in rel]
        if stale:
            remove_owned(folder, stale)  # systems of a previous result no longer scored
        written = []
        for label, text in texts.items():
            p = folder / f"{label}{SCORE_SUFFIX}"
            atomic_write_text(p, text)
            written.append(p)
        atomic_write_text(folder / FRS_INFO_NAME, json.dumps(info, indent=1) + "\n")
        written.append(folder / FRS_INFO_NAME)
        record_owned(folder, rel)
    log.info("score files of %d system(s) written to %s", len(texts), folder)
    return written


# ----------------------------------------------------------------------------------------
# the job
# ----------------------------------------------------------------------------------------
def map_score_from_files(scores_dir: PathLike, frs_info: PathLike, out_dir: PathLike, *,
                         overwrite: bool = False) -> "MapScoreResult":
    """MAP report of a score folder (``morphlab map-score --scores DIR --frs-info FILE``).

    Writes the same report folder as the image path (``map.json``, ``scores.csv``,
    figures, ``report.md``/``.html``); ``overall.map.values`` is the ``R × C`` MAP matrix
    with ``R`` the smallest number of attempts of any subject.

    Args:
        scores_dir: folder of ``<system>.txt`` score files.
        frs_info: ``{"<system>": [threshold, is_similarity]}`` JSON file.
        out_dir: the report folder (locked while written; disjoint from the inputs).
        overwrite: replace a previous report morphlab wrote there.

    Raises:
        FileNotFoundError, ScoreFileError: see :func:`read_score_folder`.
        ValueError: ``out_dir`` overlaps the inputs.
        ForeignFileError, OutputExistsError: see :func:`morphlab.outdir.check_outputs`.
    """
    from morphlab.mapscore import MapScoreResult
    from morphlab.outdir import check_disjoint
    from morphlab.reports.map_report import write_map_report

    out = Path(out_dir)
    check_disjoint(out, {"score folder": scores_dir, "frs-info file": frs_info})
    data = to_map_scores(read_score_folder(scores_dir, frs_info))
    report = write_map_report(data, out, overwrite=overwrite)
    return MapScoreResult(out, report)
