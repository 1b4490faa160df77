"""Scoring image files with a trained model (:func:`score_files`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from morphlab.detect.inputs import _preprocess_of, prepare_inputs
from morphlab.detect.outputs import PathLike
from morphlab.detectors.base import DIFFERENTIAL, load_detector
from morphlab.detectors.preprocess import NO_FACE
from morphlab.detectors.presentations import Presentation, PresentationSet
from morphlab.face.base import FaceBackend


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
