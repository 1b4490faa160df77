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
  each morph's sha256 is checked against its manifest line; pairs whose generation failed
  are counted, not used.
* D-MAD: a bona fide presentation is paired with a live image of the same subject (another
  file); a morph with a live image of each contributor (``contributors="both"``), as
  either could present the document.

The presentation-building half lives in :mod:`morphlab.detectors.presentations` and is
re-exported here. Every image goes through :func:`morphlab.detectors.preprocess.align_faces`;
unreadable images and images with no detectable face are counted and reported apart,
never silently dropped.

**Aligned crops are cached** (:mod:`morphlab.detectors.crop_cache`) by image content and
every alignment setting, so a second train/eval/calibrate/score run on the same photos
reads its crops back instead of decoding and aligning each photo again (``use_cache=False``:
neither the landmark nor the crop cache is read or written); the images the cache does not
hold are aligned in ``jobs`` worker processes, with the same crops as ``jobs=1``.

**Output folders** (model folders, report folders) follow :mod:`morphlab.outdir`: they
must not be, contain or lie inside an input folder; they are locked while written; a
previous result is replaced only with ``overwrite=True``, and then only the files morphlab
recorded writing (``.morphlab-owned.json``) are removed — a user's own file is never
replaced or deleted.

**Subject-disjoint evaluation**: the identities seen in training are stored in the model
folder; :func:`evaluate_detector` refuses a test set sharing any of them unless
``allow_overlap=True``, and the report states the overlap either way.

**Thresholds that transfer**: a freshly trained model decides at the D-EER point of its own
training scores, which on new faces can flag many bona fide photos.
:func:`calibrate_detector` (``morphlab detect calibrate``) sets it on held-out data —
identities the model was not trained on — at a named operating point (BPCER 10 % by
default, or an APCER); ``detector.json`` records where the threshold came from
(``metadata["threshold"]``) and ``detect score`` / ``detect eval`` state it
(:func:`threshold_origin`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence, Union

import numpy as np

from morphlab.detectors.base import (
    DIFFERENTIAL,
    MODEL_ARRAYS,
    MODEL_JSON,
    Detector,
    create_detector,
    detector_name,
    load_detector,
)
from morphlab.detectors.preprocess import NO_FACE, UNREADABLE, align_faces
from morphlab.detectors.presentations import (  # noqa: F401  (re-exported: the detect API)
    BONA_FIDE_SPECIES,
    Contributors,
    Presentation,
    PresentationSet,
    attack_presentations,
    bona_fide_presentations,
    build_presentations,
    expand_images,
    list_images,
    species_of,
    split_keeping_morphs,
    split_subjects,
    with_live_probes,
)
from morphlab.face.base import FaceBackend

log = logging.getLogger(__name__)

PathLike = Union[str, Path]

#: The files of a model folder, and of an evaluation report folder.
MODEL_FILES = (MODEL_JSON, MODEL_ARRAYS)
REPORT_FILES = ("metrics.json", "det.png", "histograms.png", "report.md", "report.html",
                "scores.csv")


# -- output folders ----------------------------------------------------------------------------
def _image_folders(data: PresentationSet, what: str) -> list[tuple[str, Path]]:
    """``(description, folder)`` of every folder holding an image of ``data``."""
    folders = sorted({p.parent for it in data.items for p in (it.path, it.live) if p is not None})
    return [(f"folder of {what} images", f) for f in folders]


def _require_both_classes(inputs: Inputs, what: str) -> None:
    """Refuse inputs without bona fide or without morph presentations, saying why."""
    kinds = inputs.failure_kinds or [NO_FACE] * len(inputs.failures)
    for label, name in ((0, "bona fide"), (1, "morph")):
        if (inputs.y == label).any():
            continue
        lost = [(k, r) for (it, r), k in zip(inputs.failures, kinds) if it.label == label]
        if lost:
            c = Counter(k for k, _ in lost)
            raise ValueError(f"{what}: no {name} presentation could be used "
                             f"({', '.join(f'{n} {k}' for k, n in sorted(c.items()))}); "
                             f"first: {lost[0][1]}")
        raise ValueError(f"{what} needs both bona fide and attack presentations; it has no {name} one")


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


def _check_backend(backend: Union[str, FaceBackend], where: str) -> None:
    """Refuse an unknown face backend name before any image is read."""
    if isinstance(backend, FaceBackend):
        return
    from morphlab.face.base import FACE_BACKENDS

    if not isinstance(backend, str) or backend not in FACE_BACKENDS.names():
        try:
            valid = ", ".join(FACE_BACKENDS.names())
        except Exception:  # a broken plug-in must not hide this message
            valid = "see `morphlab list`"
        raise ValueError(f"{where}: unknown face backend {backend!r}; valid names: {valid}")


# -- preprocessing -------------------------------------------------------------------------
@dataclass
class Inputs:
    """Aligned detector inputs of a presentation set.

    Attributes:
        X: ``(N, S, S, 3)`` crops (S-MAD) or ``(N, 2, S, S, 3)`` pairs (D-MAD).
        y: ``(N,)`` labels.
        items: the ``N`` presentations behind ``X``.
        failures: ``(presentation, reason)`` for those dropped because an image was
            unreadable or gave no face.
        failure_kinds: per failure, ``"unreadable"`` or ``"no face"``.
    """

    X: np.ndarray
    y: np.ndarray
    items: list[Presentation]
    failures: list[tuple[Presentation, str]]
    failure_kinds: list[str] = field(default_factory=list)


def prepare_inputs(
    data: PresentationSet,
    kind: str,
    *,
    size: int,
    backend: Union[str, FaceBackend] = "dlib",
    cache_dir: Optional[PathLike] = None,
    progress: bool = True,
    allow_empty: bool = False,
    jobs: int = 1,
    use_cache: bool = True,
) -> Inputs:
    """Align every image of ``data`` once and assemble the detector's inputs.

    Crops come through the aligned-crop cache; ``jobs`` worker processes align the images
    it does not hold; ``use_cache=False`` neither reads nor writes the landmark and crop
    caches (:func:`morphlab.detectors.preprocess.align_faces`).

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
    _check_backend(backend, "--landmarks")
    paths = sorted({p for it in data.items for p in (it.path, it.live) if p is not None})
    aligned = align_faces(paths, size=size, backend=backend, cache_dir=cache_dir, progress=progress,
                          jobs=jobs, use_cache=use_cache)
    crop = {p: aligned.crops[i] for i, p in enumerate(aligned.paths)}
    why = {p: r for p, r in aligned.failures}
    X, items, failures, kinds = [], [], [], []
    for it in data.items:
        bad = [p for p in (it.path, it.live) if p is not None and p not in crop]
        if bad:
            failures.append((it, "; ".join(why.get(p, f"{p}: no face") for p in bad)))
            kinds.append(UNREADABLE if any(aligned.kind_of(p) == UNREADABLE for p in bad) else NO_FACE)
            continue
        X.append(crop[it.path] if kind != DIFFERENTIAL else np.stack([crop[it.path], crop[it.live]]))
        items.append(it)
    if not X:
        if allow_empty:
            return Inputs(np.zeros((0,), np.uint8), np.zeros(0, np.int64), [], failures, kinds)
        c = Counter(kinds)
        raise ValueError(f"no presentation could be used: {c[UNREADABLE]} unreadable, {c[NO_FACE]} "
                         f"without a detectable face; first: {kinds[0]}: {failures[0][1]}")
    y = np.array([it.label for it in items], dtype=np.int64)
    return Inputs(np.stack(X), y, items, failures, kinds)


def _backend_name(backend: Union[str, FaceBackend]) -> str:
    return backend if isinstance(backend, str) else backend.name


def _failure_summary(inputs: Inputs, data: PresentationSet) -> dict[str, Any]:
    kinds = inputs.failure_kinds or [NO_FACE] * len(inputs.failures)
    no_face = [(it, r) for (it, r), k in zip(inputs.failures, kinds) if k == NO_FACE]
    unreadable = [(it, r) for (it, r), k in zip(inputs.failures, kinds) if k == UNREADABLE]
    by = Counter(it.species for it, _ in no_face)
    return {
        "n_no_face": len(no_face),
        "no_face_by_species": dict(sorted(by.items())),
        "no_face_examples": [reason for _, reason in no_face[:5]],
        "n_unreadable": len(unreadable),
        "unreadable_examples": [reason for _, reason in unreadable[:5]],
        "n_skipped": len(data.skipped),
        "skipped_examples": [f"{w}: {r}" for w, r in data.skipped[:5]],
    }


# -- self-morph training (morphlab.detectors.selfmorph) -------------------------------------------
def _self_morph_config(det: Detector, self_morph: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """The checked self-morph config of a training run (None: no self-morphs)."""
    if self_morph is None:
        return None
    if det.kind == DIFFERENTIAL:
        raise ValueError(f"--self-morph synthesises single-image attacks, but "
                         f"{detector_name(type(det))} is a differential (D-MAD) detector: train it "
                         "on real attack sets (--attacks) with live probes (--live)")
    from morphlab.detectors.selfmorph import self_morph_config

    return self_morph_config(**self_morph)


def _with_self_morphs(inputs: Inputs, config: dict[str, Any], *, size: int,
                      backend: Union[str, FaceBackend], cache_dir: Optional[PathLike],
                      use_cache: bool = True) -> tuple[Inputs, dict[str, Any]]:
    """``inputs`` plus the self-morphs of its bona fide crops; the config with their count."""
    from morphlab.detectors.selfmorph import SELF_MORPH_SPECIES, crop_landmarks, synthesise

    bf = np.flatnonzero(inputs.y == 0)
    if bf.size == 0:
        raise ValueError("--self-morph needs bona fide training images with a detectable face "
                         "(--bona-fide); none could be used")
    t0 = time.perf_counter()
    items = [inputs.items[i] for i in bf]
    marks = crop_landmarks([it.path for it in items], size, backend=backend, cache_dir=cache_dir,
                           use_cache=use_cache)
    X, src = synthesise(inputs.X[bf], marks, config)
    fake = [Presentation(items[i].path, 1, (items[i].subjects[0],) * 2, SELF_MORPH_SPECIES) for i in src]
    log.info("self-morph: %d synthetic attacks from %d bona fide images (%.1f s)", len(X), bf.size,
             time.perf_counter() - t0)
    out = Inputs(np.concatenate([inputs.X, X]), np.concatenate([inputs.y, np.ones(len(X), np.int64)]),
                 inputs.items + fake, inputs.failures, inputs.failure_kinds)
    return out, {**config, "n_synthetic": int(len(X)), "n_sources": int(bf.size),
                 "seconds": round(time.perf_counter() - t0, 3)}


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
    overwrite: bool = False,
    self_morph: Optional[dict[str, Any]] = None,
    seed: Optional[int] = None,
    jobs: int = 1,
    use_cache: bool = True,
) -> dict[str, Any]:
    """Align ``data``, fit a detector and save it with its provenance to ``out_dir``.

    Args:
        detector: registered name, class, or an unfitted instance.
        data: training presentations (with live probes for a D-MAD detector).
        out_dir: model folder to write.
        params: hyper-parameters when ``detector`` is a name or class.
        backend: face backend for alignment (recorded: scoring uses the same).
        crop_size: aligned crop side; default: the detector's ``crop_size``.
        cache_dir: landmark and crop cache root.
        progress: progress bars.
        overwrite: replace a model morphlab wrote in ``out_dir`` before (see
            :func:`output_folder`; other files there are kept, and a ``detector.json``
            morphlab did not write is never replaced).
        self_morph: S-MAD only: also train on synthetic attacks made from the bona fide
            images (:mod:`morphlab.detectors.selfmorph`); keyword arguments of
            :func:`~morphlab.detectors.selfmorph.self_morph_config` (``ratio``, ``seed``,
            strengths). ``data`` then needs no attacks; with attacks too, both are used.
        seed: seeds everything random in training: the detector's ``random_state``
            (when it has one and ``params`` does not set it) and the self-morphs (when
            ``self_morph`` names no ``seed``). ``None``: their own defaults (0).
        jobs: worker processes aligning the images the crop cache does not hold.
        use_cache: False to neither read nor write the landmark and crop caches.

    Returns:
        The training summary also stored in the model's metadata (counts per species,
        identities, images without a face, timings, ``mode``: ``"real"``, ``"self-morph"``
        or ``"both"``, and with self-morphs their config under ``self_morph``).

    Raises:
        ValueError: bad data, ``out_dir`` overlapping the image folders, or nothing usable.
        morphlab.outdir.OutputExistsError, ForeignFileError, FolderLockedError: see
            :func:`output_folder`.
    """
    det = detector if isinstance(detector, Detector) else create_detector(detector, **(params or {}))
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"the training seed must be an integer >= 0, got {seed!r}")
        if "random_state" in det.get_params() and "random_state" not in (params or {}):
            det.set_params(random_state=seed)
        if self_morph is not None and "seed" not in self_morph:
            self_morph = {**self_morph, "seed": seed}
    size = int(crop_size or det.crop_size)
    _check_backend(backend, "--landmarks")
    sm_config = _self_morph_config(det, self_morph)
    with output_folder(out_dir, MODEL_FILES, overwrite=overwrite,
                       sources=_image_folders(data, "training")) as out:
        t0 = time.perf_counter()
        inputs = prepare_inputs(data, det.kind, size=size, backend=backend, cache_dir=cache_dir,
                                progress=progress, jobs=jobs, use_cache=use_cache)
        mode = "real"
        if sm_config is not None:
            mode = "both" if (inputs.y == 1).any() else "self-morph"
            inputs, sm_config = _with_self_morphs(inputs, sm_config, size=size, backend=backend,
                                                  cache_dir=cache_dir, use_cache=use_cache)
        t1 = time.perf_counter()
        _require_both_classes(inputs, "the training set")
        log.info("training %s on %d presentations", detector_name(type(det)), len(inputs.y))
        from morphlab.detectors._progress import fit_progress

        with fit_progress(progress):
            det.fit(inputs.X, inputs.y)
        t2 = time.perf_counter()
        used = PresentationSet(inputs.items)
        summary = {
            "n_by_species": used.counts(),
            "subjects": sorted(used.identities()),
            **_failure_summary(inputs, data),
            "align_seconds": round(t1 - t0, 3),
            "fit_seconds": round(t2 - t1, 3),
            "mode": mode,
            **({"self_morph": sm_config} if sm_config is not None else {}),
        }
        det.metadata_ = {
            "preprocess": {"backend": _backend_name(backend), "crop_size": size,
                           "template": "mad-arcface-zoom0.8"},
            "train": summary,
            "threshold": {"source": TRAINING_DEER, "threshold": float(det.threshold_),
                          "n_bona_fide": int((inputs.y == 0).sum()),
                          "n_attack": int((inputs.y == 1).sum())},
        }
        det.save(out)
        commit_outputs(out, MODEL_FILES)
    return summary


def _preprocess_of(det: Detector, model_dir: PathLike,
                   backend: Optional[Union[str, FaceBackend]] = None) -> tuple[Union[str, FaceBackend], int]:
    """``(face backend, crop size)`` the model was trained with (checked); ``backend``
    replaces the recorded backend."""
    where = Path(model_dir) / MODEL_JSON
    pre = (getattr(det, "metadata_", {}) or {}).get("preprocess") or {}
    if not isinstance(pre, dict):
        raise ValueError(f"{where}: metadata \"preprocess\" must be a JSON object")
    size = pre.get("crop_size", det.crop_size)
    if isinstance(size, bool) or not isinstance(size, int) or not 16 <= size <= 4096:
        raise ValueError(f"{where}: metadata crop_size must be an integer from 16 to 4096, got {size!r}")
    if backend is not None:
        return backend, size
    if not isinstance(backend_saved := pre.get("backend", "dlib"), str):
        raise ValueError(f"{where}: metadata backend must be a face backend name, got {backend_saved!r}")
    from morphlab.face.base import FACE_BACKENDS

    if backend_saved not in FACE_BACKENDS.names():
        raise ValueError(f"{where}: the model was trained with face backend {backend_saved!r}, "
                         "which is not installed here (`morphlab list` shows the installed ones)")
    return backend_saved, size


def score_files(
    model_dir: PathLike,
    images: Sequence[PathLike],
    *,
    live: Optional[Sequence[PathLike]] = None,
    backend: Optional[Union[str, FaceBackend]] = None,
    cache_dir: Optional[PathLike] = None,
    progress: bool = True,
    jobs: int = 1,
    use_cache: bool = True,
) -> list[dict[str, Any]]:
    """Score image files with a trained model.

    Args:
        model_dir: a folder written by :func:`train_detector` (or ``Detector.save``).
        images: suspected images.
        live: D-MAD only: one live probe per image (same order), or one for all.
        backend: face backend; default: the one the model was trained with.
        jobs, use_cache: see :func:`prepare_inputs`.

    Returns:
        One dict per image, in order: ``path`` (and ``live``), ``score`` and ``decision``
        (``"morph"``/``"bona fide"``), or ``error``: ``"unreadable: <reason>"`` (not a
        readable image) or ``"no face: <reason>"``. The caller decides what a run where
        nothing could be scored means (``morphlab detect score`` exits 1).
    """
    det = load_detector(model_dir)
    be, size = _preprocess_of(det, model_dir, backend)
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
    inputs = prepare_inputs(data, det.kind, size=size, backend=be, cache_dir=cache_dir,
                            progress=progress, allow_empty=True, jobs=jobs, use_cache=use_cache)
    scores = det.decision_function(inputs.X) if inputs.items else np.zeros(0)
    by_item = {id(it): s for it, s in zip(inputs.items, scores)}
    kinds = inputs.failure_kinds or [NO_FACE] * len(inputs.failures)
    errors = {id(it): f"{k}: {r}" for (it, r), k in zip(inputs.failures, kinds)}
    out = []
    for it in data.items:
        row: dict[str, Any] = {"path": str(it.path)}
        if it.live is not None:
            row["live"] = str(it.live)
        if id(it) in by_item:
            s = float(by_item[id(it)])
            row.update(score=s, decision="morph" if s >= det.threshold_ else "bona fide")
        else:
            row["error"] = errors.get(id(it), f"{NO_FACE}: no face found")
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
    overwrite: bool = False,
    jobs: int = 1,
    use_cache: bool = True,
) -> dict[str, Any]:
    """Score a labelled test set and compute the ISO/IEC 30107-3 metrics.

    Args:
        model_dir: trained model folder.
        data: test presentations (bona fide and attacks; with live probes for D-MAD).
        out_dir: report folder (``metrics.json``, ``scores.csv``, ``det.png``,
            ``report.md``, ``report.html``); ``None`` computes without writing.
        allow_overlap: evaluate even if test identities were seen in training.
        overwrite: replace a report morphlab wrote in ``out_dir`` before (only the files
            it recorded writing; see :func:`output_folder`).
        jobs, use_cache: see :func:`prepare_inputs`.

    Returns:
        ``{"metrics": pad_summary(...), "info": {...}, "notes": [...]}``.

    Raises:
        ValueError: identities overlap (unless allowed), the test set lacks bona fide
            or attack presentations, or ``out_dir`` overlaps the model or image folders.
        morphlab.outdir.OutputExistsError, ForeignFileError, FolderLockedError: see
            :func:`output_folder` (checked before any image is read).
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
    be, size = _preprocess_of(det, model_dir, backend)
    sources = [("model folder", model_dir), *_image_folders(data, "test")]
    if out_dir is not None:  # refuse before the work; checked again under the lock
        from morphlab.outdir import check_disjoint, check_outputs

        for what, src in sources:
            check_disjoint(out_dir, {what: src})
        check_outputs(out_dir, REPORT_FILES, overwrite=overwrite)
    inputs = prepare_inputs(data, det.kind, size=size, backend=be, cache_dir=cache_dir,
                            progress=progress, jobs=jobs, use_cache=use_cache)
    _require_both_classes(inputs, "the test set")
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
    from morphlab.reports.provenance import detection_inputs, rel

    info = {
        "detector": detector_name(type(det)),
        "kind": det.kind,
        # paths relative to the report folder (no absolute machine path in a report)
        "model": rel(model_dir, out_dir) if out_dir is not None else str(Path(model_dir).resolve()),
        **(detection_inputs(inputs.items, out_dir) if out_dir is not None else {}),
        "params": json.dumps(det.get_params(), sort_keys=True),
        "face backend / crop": f"{_backend_name(be)} / {size} px",
        "trained on": ", ".join(f"{k}: {v}" for k, v in (train_meta.get("n_by_species") or {}).items()),
        "tested on": ", ".join(f"{k}: {v}" for k, v in PresentationSet(inputs.items).counts().items()),
        "subject-disjoint": disjoint,
        "threshold": f"{det.threshold_:.6g}: {threshold_origin(det.metadata_)}",
        "scoring": f"{len(scores) / max(score_s, 1e-9):.1f} presentations/s (after alignment)",
    }
    notes = []
    if fails["n_no_face"]:
        notes.append(
            f"{fails['n_no_face']} presentation(s) left out because an image gave no "
            f"detectable face ({', '.join(f'{k}: {v}' for k, v in fails['no_face_by_species'].items())}); "
            f"e.g. {fails['no_face_examples'][0]}")
    if fails["n_unreadable"]:
        notes.append(f"{fails['n_unreadable']} presentation(s) left out because an image was "
                     f"unreadable; e.g. {fails['unreadable_examples'][0]}")
    if fails["n_skipped"]:
        notes.append(f"{fails['n_skipped']} entries skipped while building the test set; "
                     f"e.g. {fails['skipped_examples'][0]}")
    calib = (getattr(det, "metadata_", {}) or {}).get("threshold") or {}
    calib_shared = sorted(set(calib.get("subjects") or []) & PresentationSet(inputs.items).identities()) \
        if isinstance(calib, dict) and calib.get("source") == CALIBRATED else []
    if calib_shared:
        notes.append(f"the threshold was calibrated on {len(calib_shared)} of these test identities "
                     f"(e.g. {', '.join(calib_shared[:5])}): APCER and BPCER at the model's threshold "
                     "are optimistic (the threshold-free figures are not affected)")
    if shared:
        notes.append(f"WARNING: not subject-disjoint — {len(shared)} identities also appear in "
                     f"the training data (e.g. {', '.join(shared[:5])}); the figures are optimistic.")
    result = {"metrics": summary, "info": info, "notes": notes, "failures": fails,
              "shared_identities": shared}
    if out_dir is not None:
        from morphlab.io import atomic_write_text
        from morphlab.reports.pad_report import write_pad_report

        curves = {"all attacks": (bf, at)}
        sp = np.asarray(species, dtype=object)
        if len(set(species)) > 1:
            curves.update({s: (bf, at[sp == s]) for s in sorted(set(species))})
        with output_folder(out_dir, REPORT_FILES, overwrite=overwrite, sources=sources) as out:
            written = write_pad_report(out, summary, curves, info=info, notes=notes,
                                       title=title or f"{info['detector']}: morphing attack detection",
                                       threshold_origin=info.get("threshold"))
            atomic_write_text(out / "scores.csv", rows_to_csv([
                {"path": str(it.path), "live": str(it.live or ""), "label": "morph" if it.label else "bona fide",
                 "species": it.species, "subjects": "+".join(it.subjects), "score": f"{sc:.6g}",
                 "decision": "morph" if sc >= det.threshold_ else "bona fide"}
                for it, sc in zip(inputs.items, scores)]))
            mine = [Path(p) for p in (written or {}).values() if p is not None]
            commit_outputs(out, set(REPORT_FILES) | {p.relative_to(out).as_posix() for p in mine
                                                     if out in p.parents})
        result["report"] = str(Path(out_dir) / "report.html")
    return result


# -- calibration: thresholds that transfer ----------------------------------------------------
#: ``metadata["threshold"]["source"]`` of a model's threshold: the D-EER point of its own
#: training scores (:func:`train_detector`), or set on held-out data (:func:`calibrate_detector`).
TRAINING_DEER, CALIBRATED = "training D-EER", "calibrated"
#: The operating point ``detect calibrate`` uses when none is named: BPCER = 10 %.
DEFAULT_BPCER = 0.10


def _target(bpcer: Optional[float], apcer: Optional[float]) -> tuple[str, float]:
    """``("BPCER" | "APCER", level)`` of a calibration target (default BPCER 10 %)."""
    if bpcer is not None and apcer is not None:
        raise ValueError("name one operating point: --bpcer or --apcer, not both")
    what, level = ("APCER", apcer) if apcer is not None else ("BPCER", DEFAULT_BPCER if bpcer is None else bpcer)
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.0 < float(level) < 1.0:
        raise ValueError(f"--{what.lower()} must be a rate strictly between 0 and 1 (0.1 = 10 %), got {level!r}")
    return what, float(level)


def calibration_threshold(
    bona_fide_scores: Sequence[float] | np.ndarray,
    attack_scores: Sequence[float] | np.ndarray,
    *,
    bpcer: Optional[float] = None,
    apcer: Optional[float] = None,
    species: Optional[Sequence[str]] = None,
) -> float:
    """The threshold of an operating point on calibration scores (pure NumPy).

    Score direction: higher = more likely a morph; tie rule: ``score >= t`` is an attack.

    * ``bpcer=x`` (the default, 10 %): the operating point of
      :func:`morphlab.metrics.pad.apcer_at_bpcer` — the lowest APCER with at most
      ``floor(x * M)`` of the ``M`` bona fide scores at or above the threshold;
    * ``apcer=x``: that of :func:`morphlab.metrics.pad.bpcer_at_apcer` — the lowest BPCER
      letting through at most ``floor(x * N_s)`` attacks of every species (ISO/IEC
      30107-3's maximum over species when ``species`` names more than one).

    Every threshold between that operating point and the next lower score gives the same
    errors on the calibration data; the one returned is the middle of that gap (a margin
    for new data on both sides). When only "everything bona fide" meets the target, the
    threshold is just above the highest score.

    Returns:
        A finite threshold; the calibration data's BPCER (resp. APCER) there is at most
        the target.
    """
    from morphlab.metrics.pad import apcer_at_bpcer, bpcer_at_apcer

    what, level = _target(bpcer, apcer)
    b = np.asarray(bona_fide_scores, dtype=np.float64).ravel()
    a = np.asarray(attack_scores, dtype=np.float64).ravel()
    if what == "BPCER":
        _, t = apcer_at_bpcer(b, a, level)
    else:
        multi = species is not None and len(set(species)) > 1
        _, t = bpcer_at_apcer(b, a, level, list(species) if multi else None)
    scores = np.concatenate([a, b])
    if not np.isfinite(t):
        return float(np.nextafter(scores.max(), np.inf))
    below = scores[scores < t]
    return float((below.max() + t) / 2.0) if below.size else float(t)


def _pct_text(x: float) -> str:
    return f"{100 * x:g} %"


def threshold_origin(metadata: Optional[dict[str, Any]]) -> str:
    """Where a model's threshold came from, in one line (from its ``metadata_``)."""
    th = (metadata or {}).get("threshold")
    if not isinstance(th, dict) or th.get("source") not in (TRAINING_DEER, CALIBRATED):
        return "D-EER point of its training scores (the model records no origin)"
    if th["source"] == TRAINING_DEER:
        return (f"D-EER point of its own training scores ({th.get('n_bona_fide', '?')} bona fide / "
                f"{th.get('n_attack', '?')} attacks); not calibrated on held-out data — "
                "`morphlab detect calibrate` sets one that transfers")
    ach = th.get("achieved") or {}
    got = ", ".join(f"{k} {_pct_text(v['rate'])} ({v['k']}/{v['n']})" for k, v in ach.items()
                    if isinstance(v, dict) and {"rate", "k", "n"} <= set(v))
    return (f"calibrated at {th.get('operating_point', '?')} on {th.get('n_bona_fide', '?')} bona fide / "
            f"{th.get('n_attack', '?')} attacks of {len(th.get('subjects') or [])} held-out identities"
            + (f" (there: {got})" if got else ""))


def calibrate_detector(
    model_dir: PathLike,
    data: PresentationSet,
    *,
    bpcer: Optional[float] = None,
    apcer: Optional[float] = None,
    allow_overlap: bool = False,
    backend: Optional[Union[str, FaceBackend]] = None,
    cache_dir: Optional[PathLike] = None,
    progress: bool = True,
    jobs: int = 1,
    use_cache: bool = True,
) -> dict[str, Any]:
    """Set a trained model's threshold on held-out data at a named operating point.

    The model folder's ``detector.json`` is rewritten with the new threshold and its origin
    under ``metadata["threshold"]``: ``source`` ``"calibrated"``, the operating point
    (``"BPCER=10 %"``), the target, the numbers of bona fide and attack presentations,
    their identities, their counts per species, the rates achieved on them (with 95 %
    intervals) and the threshold it replaced. ``detect score`` and ``detect eval`` use and
    state it.

    Args:
        model_dir: a model folder written by :func:`train_detector`.
        data: calibration presentations, bona fide and attacks, none of whose identities
            the model was trained on.
        bpcer: target BPCER (default 0.1 when ``apcer`` is not given).
        apcer: target APCER (maximum over species when the data hold several).
        allow_overlap: calibrate even on identities seen in training (recorded).
        backend: face backend; default: the one the model was trained with.
        jobs, use_cache: see :func:`prepare_inputs`.

    Returns:
        ``{"threshold", "previous", "operating_point", "achieved": {"BPCER", "APCER"}
        (Rate dicts), "n_bona_fide", "n_attack", "subjects", "shared_identities",
        "failures"}``.

    Raises:
        ValueError: identities shared with the training data (unless ``allow_overlap``),
            a bad target, data lacking bona fide or attack presentations, or image folders
            overlapping the model folder.
        morphlab.outdir.ForeignFileError: the model's files were not written by morphlab
            (or edited since): they are never replaced.
        morphlab.outdir.FolderLockedError: another process is writing the model folder.
    """
    from morphlab.metrics.intervals import rate

    what, level = _target(bpcer, apcer)
    det = load_detector(model_dir)
    train_subjects = ((getattr(det, "metadata_", {}) or {}).get("train") or {}).get("subjects")
    if train_subjects is None and not allow_overlap:
        raise ValueError(f"{model_dir}: the model records no training identities, so the calibration "
                         "data cannot be checked to be held out; pass --allow-overlap to calibrate anyway")
    shared = (check_subject_overlap(train_subjects, data, allow_overlap=allow_overlap)
              if train_subjects is not None else [])
    sources = _image_folders(data, "calibration")
    with output_folder(model_dir, MODEL_FILES, overwrite=True, sources=sources) as out:
        det = load_detector(out)  # as it is now, under the lock
        be, size = _preprocess_of(det, out, backend)
        inputs = prepare_inputs(data, det.kind, size=size, backend=be, cache_dir=cache_dir,
                                progress=progress, jobs=jobs, use_cache=use_cache)
        _require_both_classes(inputs, "the calibration set")
        scores = det.decision_function(inputs.X)
        b, a = scores[inputs.y == 0], scores[inputs.y == 1]
        species = [it.species for it in inputs.items if it.label == 1]
        t = calibration_threshold(b, a, bpcer=level if what == "BPCER" else None,
                                  apcer=level if what == "APCER" else None, species=species)
        achieved = {"BPCER": rate(int(np.count_nonzero(b >= t)), b.size).to_dict(),
                    "APCER": rate(int(np.count_nonzero(a < t)), a.size).to_dict()}
        used = PresentationSet(inputs.items)
        meta = dict(getattr(det, "metadata_", {}) or {})
        old = meta.get("threshold") if isinstance(meta.get("threshold"), dict) else {}
        previous = {"source": old.get("source", TRAINING_DEER), "threshold": float(det.threshold_)}
        record = {
            "source": CALIBRATED, "threshold": t, "operating_point": f"{what}={_pct_text(level)}",
            "target": {what: level}, "n_bona_fide": int(b.size), "n_attack": int(a.size),
            "n_by_species": used.counts(), "subjects": sorted(used.identities()),
            "shared_with_training": shared, "achieved": achieved, "previous": previous,
            **({"face_backend": _backend_name(be)} if backend is not None else {}),
        }
        det.set_threshold(t)
        det.metadata_ = {**meta, "threshold": record}
        det.save(out)
        commit_outputs(out, MODEL_FILES)
    log.info("%s: threshold %.6g -> %.6g (%s)", model_dir, previous["threshold"], t, record["operating_point"])
    return {**record, "shared_identities": shared, "failures": _failure_summary(inputs, data)}


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
    # the demo redoes its own model/ and report/ each run (files it did not write stay)
    train_detector(detector, train, out / "model", progress=progress, overwrite=True)
    res = evaluate_detector(out / "model", data.restrict(test_ids), out / "report", progress=progress,
                            title=f"{detector}: quick subject-disjoint demo", overwrite=True)
    m = res["metrics"]
    return {"model": out / "model", "report": out / "report" / "report.html", "D-EER": m["D-EER"],
            "BPCER@APCER=10%": m["BPCER@APCER=10%"], "metrics": m,
            "train_subjects": sorted(train_ids), "test_subjects": sorted(test_ids)}
