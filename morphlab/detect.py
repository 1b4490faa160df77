"""Train, score and evaluate morphing attack detectors on files — the library behind
``morphlab detect``.

Data come as *presentations* (:class:`Presentation`): a suspected image, its label
(bona fide or morph), the identities involved (the bona fide subject, or the morph's
subject A and subject B), its attack species (``"GENERATOR/VARIANT"``, e.g.
``"landmark/complete"``) and, for differential detectors, a trusted live probe.

* Bona fide images come from folders or list files (one path per line); the subject of
  each file is read from its name with the pattern of :mod:`morphlab.datasets.folder`
  (default: the part before the first ``_`` or ``-``, e.g. ``002_03.jpg`` → ``002``).
* Attacks come from attack-set manifests (:func:`morphlab.generators.runner.load_manifest`);
  pairs whose generation failed are counted, not used.
* D-MAD: a bona fide presentation is paired with a live image of the same subject (another
  file); a morph with a live image of each contributor (``contributors="both"``), as
  either could present the document.

Every image goes through :func:`morphlab.detectors.preprocess.align_faces`; images with
no detectable face are counted and reported, never silently dropped.

**Subject-disjoint evaluation**: the identities seen in training are stored in the model
folder; :func:`evaluate_detector` refuses a test set sharing any of them unless
``allow_overlap=True``, and the report states the overlap either way.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Literal, Optional, Sequence, Union

import numpy as np

from morphlab.detectors.base import (
    DIFFERENTIAL,
    Detector,
    create_detector,
    detector_name,
    load_detector,
)
from morphlab.detectors.preprocess import align_faces
from morphlab.face.base import FaceBackend

log = logging.getLogger(__name__)

PathLike = Union[str, Path]
BONA_FIDE_SPECIES = "bona fide"
Contributors = Literal["a", "b", "both"]


@dataclass(frozen=True)
class Presentation:
    """One sample for a detector.

    Attributes:
        path: the suspected image.
        label: 1 = morph, 0 = bona fide.
        subjects: identities in the image (bona fide: one; morph: subject A, subject B).
        species: ``"bona fide"`` or the attack species ``"GENERATOR/VARIANT"``.
        live: D-MAD only: the trusted live probe.
        live_subject: identity of the live probe.
    """

    path: Path
    label: int
    subjects: tuple[str, ...]
    species: str = BONA_FIDE_SPECIES
    live: Optional[Path] = None
    live_subject: Optional[str] = None

    def identities(self) -> set[str]:
        ids = set(self.subjects)
        if self.live_subject is not None:
            ids.add(self.live_subject)
        return ids


@dataclass
class PresentationSet:
    """Presentations plus what was left out on the way (``(what, reason)`` pairs)."""

    items: list[Presentation] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    def __add__(self, other: "PresentationSet") -> "PresentationSet":
        return PresentationSet(self.items + other.items, self.skipped + other.skipped)

    def identities(self) -> set[str]:
        out: set[str] = set()
        for it in self.items:
            out |= it.identities()
        return out

    def counts(self) -> dict[str, int]:
        """Number of presentations per species (bona fide first)."""
        c = Counter(it.species for it in self.items)
        return {k: c[k] for k in sorted(c, key=lambda s: (s != BONA_FIDE_SPECIES, s))}

    def restrict(self, subjects: Iterable[str]) -> "PresentationSet":
        """The presentations whose every identity is in ``subjects``."""
        keep = set(subjects)
        return PresentationSet([it for it in self.items if it.identities() <= keep], list(self.skipped))


# -- building presentation sets ----------------------------------------------------------
def _subject_of(path: Path, rx) -> Optional[str]:
    m = rx.match(path.stem)
    return m.group("subject") if m and m.group("subject") else None


def list_images(source: PathLike, *, pattern: Optional[str] = None) -> list[tuple[Path, str]]:
    """``(path, subject)`` of the images of a folder, a list file or one image file.

    Args:
        source: a folder (searched recursively, as :func:`morphlab.datasets.folder.load_folder`),
            a text file with one image path per line (relative paths are relative to the
            list file; blank lines and ``#`` comments are ignored), or an image file.
        pattern: file-name pattern with a ``subject`` group (default
            :data:`morphlab.datasets.folder.DEFAULT_PATTERN`).

    Raises:
        FileNotFoundError: ``source`` or a listed file is missing.
        ValueError: a file name does not match the pattern, or nothing is found.
    """
    from morphlab.datasets.folder import DEFAULT_PATTERN, compile_pattern, load_folder
    from morphlab.io import IMAGE_SUFFIXES

    pattern = pattern or DEFAULT_PATTERN
    src = Path(source)
    if src.is_dir():
        ds = load_folder(src, pattern=pattern, check_images=False)
        return [(s.path, s.subject) for s in ds.samples]
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no such folder, list file or image")
    rx = compile_pattern(pattern)
    if src.suffix.lower() in IMAGE_SUFFIXES:
        files = [src.resolve()]
    else:
        files = []
        for num, line in enumerate(src.read_text(encoding="utf-8").splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            p = Path(line)
            p = (p if p.is_absolute() else src.parent / p).resolve()
            if not p.is_file():
                raise FileNotFoundError(f"{src}, line {num}: image {p} not found")
            files.append(p)
        if not files:
            raise ValueError(f"{src}: the list file names no image")
    out = []
    for f in files:
        subject = _subject_of(f, rx)
        if subject is None:
            raise ValueError(
                f"{f}: file name does not match the subject pattern {pattern!r}; rename it "
                "or pass another pattern (--pattern)"
            )
        out.append((f, subject))
    return out


def bona_fide_presentations(sources: Sequence[PathLike], *, pattern: Optional[str] = None) -> PresentationSet:
    """Bona fide presentations from folders / list files / images (see :func:`list_images`)."""
    items = [Presentation(p, 0, (s,)) for src in sources for p, s in list_images(src, pattern=pattern)]
    return PresentationSet(items)


def species_of(record: dict) -> str:
    """``"GENERATOR/VARIANT"`` of a manifest record (variant: ``params["variant"]``, else the tag)."""
    params = record.get("params") or {}
    variant = params.get("variant") or record.get("tag") or "default"
    return f"{record.get('generator', 'unknown')}/{variant}"


def attack_presentations(manifests: Sequence[PathLike], *, variants: Optional[Sequence[str]] = None) -> PresentationSet:
    """Morph presentations from attack-set manifests.

    Args:
        manifests: ``manifest.jsonl`` files or attack-set folders.
        variants: keep only these variants (e.g. ``["complete"]``); matched against the
            variant part of :func:`species_of` or the full species.

    Returns:
        The morphs; pairs whose generation failed are listed in ``skipped``.
    """
    from morphlab.generators.runner import load_manifest

    out = PresentationSet()
    for m in manifests:
        for rec in load_manifest(m, include_failed=True):
            if rec.get("status") != "ok":
                out.skipped.append((f"{m}: pair {rec.get('pair_id')}", f"generation failed: {rec.get('error')}"))
                continue
            sp = species_of(rec)
            if variants and sp not in variants and sp.split("/", 1)[1] not in variants:
                continue
            subjects = (str(rec["subject_a"]["id"]), str(rec["subject_b"]["id"]))
            out.items.append(Presentation(Path(rec["path"]), 1, subjects, sp))
    if not out.items:
        raise ValueError(
            f"no usable morph in {', '.join(map(str, manifests))}"
            + (f" with variant(s) {', '.join(variants)}" if variants else "")
        )
    return out


def with_live_probes(
    data: PresentationSet,
    live_sources: Sequence[PathLike],
    *,
    pattern: Optional[str] = None,
    contributors: Contributors = "both",
) -> PresentationSet:
    """Turn presentations into D-MAD ``(suspected, live)`` presentations.

    A bona fide presentation gets every live image of its subject other than itself; a
    morph gets, for subject A and/or subject B (``contributors``), every live image of
    that contributor. Presentations without any live image are listed in ``skipped``.
    """
    if contributors not in ("a", "b", "both"):
        raise ValueError(f"contributors must be 'a', 'b' or 'both', got {contributors!r}")
    live: dict[str, list[Path]] = {}
    for src in live_sources:
        for p, s in list_images(src, pattern=pattern):
            live.setdefault(s, []).append(p)
    out = PresentationSet([], list(data.skipped))
    for it in data.items:
        if it.label == 0:
            who = [it.subjects[0]]
        else:
            who = {"a": it.subjects[:1], "b": it.subjects[1:2], "both": it.subjects}[contributors]
        made = 0
        for s in who:
            for probe in live.get(s, []):
                if probe.resolve() != it.path.resolve():
                    out.items.append(replace(it, live=probe, live_subject=s))
                    made += 1
        if not made:
            out.skipped.append((str(it.path), f"no live probe of subject {'/'.join(who)}"))
    return out


def split_subjects(subjects: Iterable[str], *, test_fraction: float = 0.5, seed: int = 0) -> tuple[set[str], set[str]]:
    """Split identities at random into disjoint ``(train, test)`` sets."""
    subs = sorted(set(subjects))
    if len(subs) < 2:
        raise ValueError(f"need at least 2 identities to split, got {len(subs)}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    order = np.random.default_rng(seed).permutation(len(subs))
    n_test = min(max(1, int(round(test_fraction * len(subs)))), len(subs) - 1)
    test = {subs[i] for i in order[:n_test]}
    return set(subs) - test, test


def build_presentations(
    bona_fide: Sequence[PathLike] = (),
    attacks: Sequence[PathLike] = (),
    *,
    live: Sequence[PathLike] = (),
    variants: Optional[Sequence[str]] = None,
    pattern: Optional[str] = None,
    contributors: Contributors = "both",
) -> PresentationSet:
    """Bona fide sources + attack manifests (+ live probes for D-MAD) → one presentation set."""
    data = bona_fide_presentations(bona_fide, pattern=pattern) if bona_fide else PresentationSet()
    if attacks:
        data = data + attack_presentations(attacks, variants=variants)
    if live:
        data = with_live_probes(data, live, pattern=pattern, contributors=contributors)
    return data


def split_keeping_morphs(data: PresentationSet, *, test_fraction: float = 0.5,
                         seed: int = 0) -> tuple[set[str], set[str]]:
    """Subject-disjoint ``(train, test)`` identities that lose as few morphs as possible.

    Identities linked by a morph (subject A and subject B) must fall on one side, so the
    connected groups of the "morphed together" graph are assigned whole, in seeded random
    order, to the test side until it holds ``test_fraction`` of the identities. With pairs
    made once per subject every morph is kept; a graph that is one big group cannot be
    split without losing morphs — then :func:`split_subjects` is used and the morphs
    spanning both sides are dropped by :meth:`PresentationSet.restrict`.
    """
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        while parent.setdefault(a, a) != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for it in data.items:
        ids = sorted(it.identities())
        for other in ids[1:]:
            parent[find(other)] = find(ids[0])
    groups: dict[str, list[str]] = {}
    for a in sorted(data.identities()):
        groups.setdefault(find(a), []).append(a)
    comps = sorted(groups.values())
    total = sum(len(c) for c in comps)
    if len(comps) < 2 or max(len(c) for c in comps) > max(1, round(test_fraction * total)):
        return split_subjects(data.identities(), test_fraction=test_fraction, seed=seed)
    test: set[str] = set()
    for i in np.random.default_rng(seed).permutation(len(comps)):
        if len(test) + len(comps[i]) <= round(test_fraction * total) or not test:
            test |= set(comps[i])
    return data.identities() - test, test


# -- preprocessing -------------------------------------------------------------------------
@dataclass
class Inputs:
    """Aligned detector inputs of a presentation set.

    Attributes:
        X: ``(N, S, S, 3)`` crops (S-MAD) or ``(N, 2, S, S, 3)`` pairs (D-MAD).
        y: ``(N,)`` labels.
        items: the ``N`` presentations behind ``X``.
        failures: ``(presentation, reason)`` for those dropped because an image gave no face.
    """

    X: np.ndarray
    y: np.ndarray
    items: list[Presentation]
    failures: list[tuple[Presentation, str]]


def prepare_inputs(
    data: PresentationSet,
    kind: str,
    *,
    size: int,
    backend: Union[str, FaceBackend] = "dlib",
    cache_dir: Optional[PathLike] = None,
    progress: bool = True,
    allow_empty: bool = False,
) -> Inputs:
    """Align every image of ``data`` once and assemble the detector's inputs.

    Raises:
        ValueError: no presentation could be aligned (unless ``allow_empty``), or live
            probes do not fit the detector kind.
    """
    if not data.items:
        raise ValueError("no presentations to process")
    if kind == DIFFERENTIAL and any(it.live is None for it in data.items):
        raise ValueError("a differential detector needs a live probe for every presentation (--live)")
    if kind != DIFFERENTIAL and any(it.live is not None for it in data.items):
        raise ValueError("live probes were given but this is a single-image detector")
    paths = sorted({p for it in data.items for p in (it.path, it.live) if p is not None})
    aligned = align_faces(paths, size=size, backend=backend, cache_dir=cache_dir, progress=progress)
    crop = {p: aligned.crops[i] for i, p in enumerate(aligned.paths)}
    why = {p: r for p, r in aligned.failures}
    X, items, failures = [], [], []
    for it in data.items:
        bad = [p for p in (it.path, it.live) if p is not None and p not in crop]
        if bad:
            failures.append((it, "; ".join(why.get(p, f"{p}: no face") for p in bad)))
            continue
        X.append(crop[it.path] if kind != DIFFERENTIAL else np.stack([crop[it.path], crop[it.live]]))
        items.append(it)
    if not X:
        if allow_empty:
            return Inputs(np.zeros((0,), np.uint8), np.zeros(0, np.int64), [], failures)
        raise ValueError(f"no presentation could be aligned ({len(failures)} failed; first: {failures[0][1]})")
    y = np.array([it.label for it in items], dtype=np.int64)
    return Inputs(np.stack(X), y, items, failures)


def _backend_name(backend: Union[str, FaceBackend]) -> str:
    return backend if isinstance(backend, str) else backend.name


def _failure_summary(inputs: Inputs, data: PresentationSet) -> dict[str, Any]:
    by = Counter(it.species for it, _ in inputs.failures)
    return {
        "n_no_face": len(inputs.failures),
        "no_face_by_species": dict(sorted(by.items())),
        "no_face_examples": [reason for _, reason in inputs.failures[:5]],
        "n_skipped": len(data.skipped),
        "skipped_examples": [f"{w}: {r}" for w, r in data.skipped[:5]],
    }


# -- train / score / evaluate ------------------------------------------------------------------
def train_detector(
    detector: Union[str, type, Detector],
    data: PresentationSet,
    out_dir: PathLike,
    *,
    params: Optional[dict[str, Any]] = None,
    backend: Union[str, FaceBackend] = "dlib",
    crop_size: Optional[int] = None,
    cache_dir: Optional[PathLike] = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Align ``data``, fit a detector and save it with its provenance to ``out_dir``.

    Args:
        detector: registered name, class, or an unfitted instance.
        data: training presentations (with live probes for a D-MAD detector).
        out_dir: model folder to write.
        params: hyper-parameters when ``detector`` is a name or class.
        backend: face backend for alignment (recorded: scoring uses the same).
        crop_size: aligned crop side; default: the detector's ``crop_size``.
        cache_dir: landmark cache root.
        progress: progress bars.

    Returns:
        The training summary also stored in the model's metadata (counts per species,
        identities, images without a face, timings).
    """
    det = detector if isinstance(detector, Detector) else create_detector(detector, **(params or {}))
    size = int(crop_size or det.crop_size)
    t0 = time.perf_counter()
    inputs = prepare_inputs(data, det.kind, size=size, backend=backend, cache_dir=cache_dir, progress=progress)
    t1 = time.perf_counter()
    log.info("training %s on %d presentations", detector_name(type(det)), len(inputs.y))
    det.fit(inputs.X, inputs.y)
    t2 = time.perf_counter()
    used = PresentationSet(inputs.items)
    summary = {
        "n_by_species": used.counts(),
        "subjects": sorted(used.identities()),
        **_failure_summary(inputs, data),
        "align_seconds": round(t1 - t0, 3),
        "fit_seconds": round(t2 - t1, 3),
    }
    det.metadata_ = {
        "preprocess": {"backend": _backend_name(backend), "crop_size": size,
                       "template": "mad-arcface-zoom0.8"},
        "train": summary,
    }
    det.save(out_dir)
    return summary


def _preprocess_of(det: Detector, model_dir: PathLike) -> tuple[str, int]:
    pre = (getattr(det, "metadata_", {}) or {}).get("preprocess") or {}
    return pre.get("backend", "dlib"), int(pre.get("crop_size", det.crop_size))


def score_files(
    model_dir: PathLike,
    images: Sequence[PathLike],
    *,
    live: Optional[Sequence[PathLike]] = None,
    backend: Optional[Union[str, FaceBackend]] = None,
    cache_dir: Optional[PathLike] = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Score image files with a trained model.

    Args:
        model_dir: a folder written by :func:`train_detector` (or ``Detector.save``).
        images: suspected images.
        live: D-MAD only: one live probe per image (same order), or one for all.
        backend: face backend; default: the one the model was trained with.

    Returns:
        One dict per image, in order: ``path`` (and ``live``), ``score`` and ``decision``
        (``"morph"``/``"bona fide"``), or ``error`` when no face was found.
    """
    det = load_detector(model_dir)
    be, size = _preprocess_of(det, model_dir)
    images = [Path(p) for p in images]
    if not images:
        raise ValueError("no images to score")
    if det.kind == DIFFERENTIAL:
        if not live:
            raise ValueError(f"{model_dir}: a differential detector needs a live probe (--live)")
        live_p = [Path(p) for p in live]
        if len(live_p) == 1:
            live_p = live_p * len(images)
        if len(live_p) != len(images):
            raise ValueError(f"got {len(images)} images but {len(live_p)} live probes")
        data = PresentationSet([Presentation(p, 0, (), live=q) for p, q in zip(images, live_p)])
    else:
        if live:
            raise ValueError(f"{model_dir}: a single-image detector takes no live probe")
        data = PresentationSet([Presentation(p, 0, ()) for p in images])
    inputs = prepare_inputs(data, det.kind, size=size, backend=backend or be,
                            cache_dir=cache_dir, progress=progress, allow_empty=True)
    scores = det.decision_function(inputs.X) if inputs.items else np.zeros(0)
    by_item = {id(it): s for it, s in zip(inputs.items, scores)}
    errors = {id(it): r for it, r in inputs.failures}
    out = []
    for it in data.items:
        row: dict[str, Any] = {"path": str(it.path)}
        if it.live is not None:
            row["live"] = str(it.live)
        if id(it) in by_item:
            s = float(by_item[id(it)])
            row.update(score=s, decision="morph" if s >= det.threshold_ else "bona fide")
        else:
            row["error"] = errors.get(id(it), "no face found")
        out.append(row)
    return out


def check_subject_overlap(train_subjects: Iterable[str], test: PresentationSet, *,
                          allow_overlap: bool = False) -> list[str]:
    """Identities shared by the training data and ``test`` (sorted).

    Raises:
        ValueError: some are shared and ``allow_overlap`` is False.
    """
    shared = sorted(set(train_subjects) & test.identities())
    if shared and not allow_overlap:
        raise ValueError(
            f"the test data share {len(shared)} identities with the training data "
            f"(e.g. {', '.join(shared[:5])}): the evaluation would not be subject-disjoint. "
            "Remove them from the test set, or pass --allow-overlap (allow_overlap=True) to "
            "evaluate anyway; the report will say so"
        )
    return shared


def evaluate_detector(
    model_dir: PathLike,
    data: PresentationSet,
    out_dir: Optional[PathLike] = None,
    *,
    allow_overlap: bool = False,
    backend: Optional[Union[str, FaceBackend]] = None,
    cache_dir: Optional[PathLike] = None,
    progress: bool = True,
    title: Optional[str] = None,
) -> dict[str, Any]:
    """Score a labelled test set and compute the ISO/IEC 30107-3 metrics.

    Args:
        model_dir: trained model folder.
        data: test presentations (bona fide and attacks; with live probes for D-MAD).
        out_dir: report folder (``metrics.json``, ``scores.csv``, ``det.png``,
            ``report.md``, ``report.html``); ``None`` computes without writing.
        allow_overlap: evaluate even if test identities were seen in training.

    Returns:
        ``{"metrics": pad_summary(...), "info": {...}, "notes": [...]}``.

    Raises:
        ValueError: identities overlap (unless allowed), or the test set lacks bona fide
            or attack presentations.
    """
    from morphlab.metrics.pad import pad_summary

    det = load_detector(model_dir)
    train_meta = (getattr(det, "metadata_", {}) or {}).get("train") or {}
    train_subjects = train_meta.get("subjects")
    if train_subjects is None:
        if not allow_overlap:
            raise ValueError(
                f"{model_dir}: the model records no training identities, so subject "
                "disjointness cannot be checked; pass --allow-overlap to evaluate anyway"
            )
        shared: list[str] = []
    else:
        shared = check_subject_overlap(train_subjects, data, allow_overlap=allow_overlap)
    be, size = _preprocess_of(det, model_dir)
    inputs = prepare_inputs(data, det.kind, size=size, backend=backend or be,
                            cache_dir=cache_dir, progress=progress)
    if not (inputs.y == 0).any() or not (inputs.y == 1).any():
        raise ValueError("the test set needs both bona fide and attack presentations")
    t0 = time.perf_counter()
    scores = det.decision_function(inputs.X)
    score_s = time.perf_counter() - t0
    bf = scores[inputs.y == 0]
    at = scores[inputs.y == 1]
    species = [it.species for it in inputs.items if it.label == 1]
    summary = pad_summary(bf, at, species=species, threshold=det.threshold_)
    if train_subjects is None:
        disjoint = "unknown (the model records no training identities)"
    elif shared:
        disjoint = f"NO — {len(shared)} shared identities (allowed explicitly)"
    else:
        disjoint = f"yes ({len(train_subjects)} training, {len(PresentationSet(inputs.items).identities())} test identities, none shared)"
    fails = _failure_summary(inputs, data)
    info = {
        "detector": detector_name(type(det)),
        "kind": det.kind,
        "model": str(Path(model_dir).resolve()),
        "params": json.dumps(det.get_params(), sort_keys=True),
        "face backend / crop": f"{backend or be} / {size} px",
        "trained on": ", ".join(f"{k}: {v}" for k, v in (train_meta.get("n_by_species") or {}).items()),
        "tested on": ", ".join(f"{k}: {v}" for k, v in PresentationSet(inputs.items).counts().items()),
        "subject-disjoint": disjoint,
        "scoring": f"{len(scores) / max(score_s, 1e-9):.1f} presentations/s (after alignment)",
    }
    notes = []
    if fails["n_no_face"]:
        notes.append(
            f"{fails['n_no_face']} presentation(s) left out because an image gave no "
            f"detectable face ({', '.join(f'{k}: {v}' for k, v in fails['no_face_by_species'].items())}); "
            f"e.g. {fails['no_face_examples'][0]}")
    if fails["n_skipped"]:
        notes.append(f"{fails['n_skipped']} entries skipped while building the test set; "
                     f"e.g. {fails['skipped_examples'][0]}")
    if shared:
        notes.append(f"WARNING: not subject-disjoint — {len(shared)} identities also appear in "
                     f"the training data (e.g. {', '.join(shared[:5])}); the figures are optimistic.")
    result = {"metrics": summary, "info": info, "notes": notes, "failures": fails,
              "shared_identities": shared}
    if out_dir is not None:
        from morphlab.io import atomic_write_text
        from morphlab.reports.pad_report import write_pad_report

        out = Path(out_dir)
        curves = {"all attacks": (bf, at)}
        sp = np.asarray(species, dtype=object)
        if len(set(species)) > 1:
            curves.update({s: (bf, at[sp == s]) for s in sorted(set(species))})
        write_pad_report(out, summary, curves, info=info, notes=notes,
                         title=title or f"{info['detector']}: morphing attack detection")
        atomic_write_text(out / "scores.csv", rows_to_csv([
            {"path": str(it.path), "live": str(it.live or ""), "label": "morph" if it.label else "bona fide",
             "species": it.species, "subjects": "+".join(it.subjects), "score": f"{sc:.6g}",
             "decision": "morph" if sc >= det.threshold_ else "bona fide"}
            for it, sc in zip(inputs.items, scores)]))
        result["report"] = str(out / "report.html")
    return result


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


def expand_images(sources: Sequence[PathLike]) -> list[Path]:
    """Image files named directly, plus the images in named folders (recursively, sorted)."""
    from morphlab.io import IMAGE_SUFFIXES

    out: list[Path] = []
    for src in map(Path, sources):
        if src.is_dir():
            found = sorted(f for f in src.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
                           and not any(part.startswith(".") for part in f.relative_to(src).parts))
            if not found:
                raise ValueError(f"{src}: no image files in this folder")
            out += found
        elif src.is_file():
            out.append(src)
        else:
            raise FileNotFoundError(f"{src}: no such image or folder")
    return out


def quick_detector_demo(
    attack_manifest: PathLike,
    bona_fide_paths: Sequence[PathLike],
    out_dir: PathLike,
    *,
    detector: str = "freq-logreg",
    train_variant: Optional[str] = "complete",
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Train and evaluate a detector on a small attack set, subject-disjointly.

    The identities are split in two (:func:`split_keeping_morphs`); the detector is trained
    on one half's bona fide images and ``train_variant`` morphs, and evaluated on the other
    half's bona fide images and morphs of every variant.

    Args:
        attack_manifest: an attack set (``manifest.jsonl`` or its folder).
        bona_fide_paths: bona fide images, folders or list files (subject from the name).
        out_dir: receives ``model/`` and ``report/`` (metrics.json, det.png, report.md/html).
        detector: registered detector name (default ``freq-logreg``: fast, and a linear
            model on 45 features copes with the few images of a demo).
        train_variant: variant to train on (``None``: all).
        seed: seed of the identity split.

    Returns:
        ``{"model": path, "report": path, "D-EER": pooled D-EER, "BPCER@APCER=10%": …,
        "metrics": all pooled metrics, "train_subjects", "test_subjects"}``.
    """
    data = build_presentations(bona_fide_paths, [attack_manifest])
    train_ids, test_ids = split_keeping_morphs(data, test_fraction=0.5, seed=seed)
    train = data.restrict(train_ids)
    if train_variant is not None:
        kept = [it for it in train.items if it.label == 0 or it.species.split("/", 1)[-1] == train_variant]
        train = PresentationSet(kept or train.items, train.skipped)
    out = Path(out_dir)
    train_detector(detector, train, out / "model", progress=progress)
    res = evaluate_detector(out / "model", data.restrict(test_ids), out / "report", progress=progress,
                            title=f"{detector}: quick subject-disjoint demo")
    m = res["metrics"]
    return {"model": out / "model", "report": out / "report" / "report.html", "D-EER": m["D-EER"],
            "BPCER@APCER=10%": m["BPCER@APCER=10%"], "metrics": m,
            "train_subjects": sorted(train_ids), "test_subjects": sorted(test_ids)}
