"""Presentation sets → aligned detector inputs (:class:`Inputs`), and the checks and
summaries of those inputs shared by training, scoring, evaluation and calibration."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from morphlab.detect.outputs import PathLike
from morphlab.detectors.base import DIFFERENTIAL, MODEL_JSON, Detector
from morphlab.detectors.preprocess import NO_FACE, UNREADABLE, align_faces
from morphlab.detectors.presentations import Presentation, PresentationSet
from morphlab.face.base import FaceBackend


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
