"""Thresholds that transfer: setting a trained model's threshold on held-out data at a
named operating point (:func:`calibrate_detector`)."""

from __future__ import annotations

import logging
from typing import Any, Optional, Sequence, Union

import numpy as np

from morphlab.detect.evaluate import check_subject_overlap
from morphlab.detect.inputs import (
    _backend_name,
    _failure_summary,
    _preprocess_of,
    _require_both_classes,
    prepare_inputs,
)
from morphlab.detect.outputs import (
    MODEL_FILES,
    PathLike,
    _image_folders,
    commit_outputs,
    output_folder,
)
from morphlab.detect.thresholds import CALIBRATED, TRAINING_DEER, _pct_text
from morphlab.detectors.base import load_detector
from morphlab.detectors.presentations import PresentationSet
from morphlab.face.base import FaceBackend

log = logging.getLogger(__name__)

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
