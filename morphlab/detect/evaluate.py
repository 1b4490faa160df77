"""Subject-disjoint evaluation of a trained model (:func:`evaluate_detector`): ISO/IEC
30107-3 metrics and the report folder."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import numpy as np

from morphlab.detect.inputs import (
    _backend_name,
    _failure_summary,
    _preprocess_of,
    _require_both_classes,
    prepare_inputs,
)
from morphlab.detect.outputs import (
    REPORT_FILES,
    PathLike,
    _image_folders,
    commit_outputs,
    output_folder,
    rows_to_csv,
)
from morphlab.detect.thresholds import CALIBRATED, threshold_origin
from morphlab.detectors.base import detector_name, load_detector
from morphlab.detectors.presentations import PresentationSet
from morphlab.face.base import FaceBackend


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
