"""Training a detector on presentations (:func:`train_detector`), with self-morphs
(:mod:`morphlab.detectors.selfmorph`) when asked."""

from __future__ import annotations

import logging
import time
from typing import Any, Optional, Union

import numpy as np

from morphlab.detect.inputs import (
    Inputs,
    _backend_name,
    _check_backend,
    _failure_summary,
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
from morphlab.detect.thresholds import TRAINING_DEER
from morphlab.detectors.base import (
    DIFFERENTIAL,
    Detector,
    create_detector,
    detector_name,
)
from morphlab.detectors.presentations import Presentation, PresentationSet
from morphlab.face.base import FaceBackend

log = logging.getLogger(__name__)

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
