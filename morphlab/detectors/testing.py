"""Conformance kit for detectors: run :func:`check_detector` in your plug-in's tests.

.. code-block:: python

    from morphlab.detectors.testing import check_detector

    def test_my_detector_conforms():
        check_detector(MyDetector, {"n_estimators": 10})

It trains the detector on a small synthetic task (:func:`make_synthetic_task`) and checks
the contract of :mod:`morphlab.detectors.base`: parameters, ``fit`` returning ``self``,
one float score per input, determinism for a fixed ``random_state``, an identical
save/load round trip, clear errors on bad input (unlabelled, single-class or mislabelled
data, wrong crops, unfitted use, another detector's or a newer model folder) and the
score direction (morphs score higher on held-out data). A failed check raises
``AssertionError`` saying which.

The synthetic task mimics what blending does to a face image: each "identity" is a smooth
random colour field, each capture of it adds sensor grain and a small exposure change,
and a "morph" is the pixel average of captures of two identities — so its grain is
weaker and two structures are superimposed. It is easy on purpose: a detector that
cannot learn it, or scores it the wrong way round, is broken.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Optional

import numpy as np

from morphlab.detectors.base import (
    DETECTORS,
    DIFFERENTIAL,
    MODEL_FORMAT_VERSION,
    MODEL_JSON,
    SINGLE_IMAGE,
    Detector,
    NotFittedError,
    detector_name,
    load_detector,
)


def _identity(rng: np.random.Generator, size: int) -> np.ndarray:
    import cv2

    coarse = rng.normal(0.5, 0.18, (6, 6, 3)).astype(np.float32)
    return np.clip(cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC), 0.05, 0.95)


def _capture(rng: np.random.Generator, base: np.ndarray, grain: float) -> np.ndarray:
    img = np.roll(base, tuple(rng.integers(-1, 2, 2)), axis=(0, 1)) * rng.uniform(0.92, 1.08)
    return img + rng.normal(0.0, grain, base.shape).astype(np.float32)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def make_synthetic_task(kind: str = SINGLE_IMAGE, n: int = 48, *, size: int = 64,
                        seed: int = 0, grain: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """A small, easy morph-detection task (see the module docstring).

    Args:
        kind: ``"single-image"`` (S-MAD crops) or ``"differential"`` (D-MAD pairs).
        n: number of samples, half bona fide and half morphs.
        size: crop side in pixels.
        seed: everything is drawn from this seed.
        grain: standard deviation of the sensor grain (fraction of full scale).

    Returns:
        ``(X, y)``: ``(n, size, size, 3)`` uint8 crops — or ``(n, 2, size, size, 3)``
        ``(suspected, live)`` pairs — and ``(n,)`` int64 labels (1 = morph), shuffled.
    """
    if kind not in (SINGLE_IMAGE, DIFFERENTIAL):
        raise ValueError(f"kind must be {SINGLE_IMAGE!r} or {DIFFERENTIAL!r}, got {kind!r}")
    rng = np.random.default_rng(seed)
    n_bf = n // 2
    ids = [_identity(rng, size) for _ in range(max(n_bf, 2) + 1)]
    X, y = [], []
    for i in range(n):
        a = i % len(ids)
        if i < n_bf:  # bona fide: a capture of identity a (live: another capture of a)
            sus = _capture(rng, ids[a], grain)
        else:  # morph: the average of captures of identities a and b
            b = (a + 1 + rng.integers(len(ids) - 1)) % len(ids)
            sus = 0.5 * (_capture(rng, ids[a], grain) + _capture(rng, ids[b], grain))
        item = _to_uint8(sus)
        if kind == DIFFERENTIAL:
            item = np.stack([item, _to_uint8(_capture(rng, ids[a], grain))])
        X.append(item)
        y.append(0 if i < n_bf else 1)
    order = rng.permutation(n)
    return np.stack(X)[order], np.asarray(y, dtype=np.int64)[order]


def auc(bona_fide_scores: np.ndarray, attack_scores: np.ndarray) -> float:
    """Probability that an attack scores higher than a bona fide sample (ties count 1/2)."""
    b = np.asarray(bona_fide_scores, np.float64)[:, None]
    a = np.asarray(attack_scores, np.float64)[None, :]
    return float(((a > b).sum() + 0.5 * (a == b).sum()) / (a.size * b.size))


def _json_roundtrip(params: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(params))


def _fail(cls: type, msg: str) -> AssertionError:
    return AssertionError(f"{detector_name(cls)} ({cls.__module__}.{cls.__qualname__}): {msg}")


def _expect_error(cls: type, what: str, exc_types: tuple, fn, *args) -> None:
    try:
        fn(*args)
    except exc_types:
        return
    except Exception as exc:  # a deep library traceback instead of a clear error
        raise _fail(cls, f"{what}: raised {type(exc).__name__} ({exc}), expected "
                         f"{'/'.join(e.__name__ for e in exc_types)}") from exc
    raise _fail(cls, f"{what}: no error raised")


def check_detector(cls: type, params: Optional[dict[str, Any]] = None, *, n: int = 48,
                   size: int = 64, seed: int = 0, min_auc: float = 0.8) -> dict[str, float]:
    """Check that a detector class honours the morphlab detector contract.

    Args:
        cls: the detector class (a subclass of ``SingleImageDetector`` or
            ``DifferentialDetector``).
        params: keyword hyper-parameters for quick training (e.g. few epochs).
        n: training-set size of the synthetic task (the held-out set has the same size).
        size: synthetic crop side in pixels.
        seed: seed of the synthetic data.
        min_auc: the held-out AUC (morphs above bona fide) the detector must reach.

    Returns:
        ``{"auc": held-out AUC}``.

    Raises:
        AssertionError: naming the first check that failed.
    """
    params = dict(params or {})
    if not (isinstance(cls, type) and issubclass(cls, Detector)):
        raise AssertionError(f"{cls!r} is not a subclass of morphlab.detectors.base.Detector")
    if cls.kind not in (SINGLE_IMAGE, DIFFERENTIAL):
        raise _fail(cls, f"kind must be {SINGLE_IMAGE!r} or {DIFFERENTIAL!r}, got {cls.kind!r}")

    # parameters: stored unchanged, round trip through get_params and JSON
    det = cls(**params)
    got = det.get_params()
    for k, v in params.items():
        if got.get(k) != v:
            raise _fail(cls, f"__init__ must store parameter {k!r} unchanged (got {got.get(k)!r})")
    try:
        got = _json_roundtrip(got)  # what a saved model folder gives back
    except TypeError as exc:
        raise _fail(cls, f"parameters must be JSON-serialisable: {exc}") from None
    if _json_roundtrip(cls(**got).get_params()) != got:
        raise _fail(cls, "cls(**get_params()) must give the same parameters")

    X, y = make_synthetic_task(cls.kind, n, size=size, seed=seed)
    X_test, y_test = make_synthetic_task(cls.kind, n, size=size, seed=seed + 1000)

    # bad input, before and around fitting
    _expect_error(cls, "decision_function before fit", (NotFittedError,), det.decision_function, X)
    _expect_error(cls, "fit without labels", (ValueError,), det.fit, X, None)
    _expect_error(cls, "fit on bona fide only", (ValueError,), det.fit, X, np.zeros(n, np.int64))
    _expect_error(cls, "fit on morphs only", (ValueError,), det.fit, X, np.ones(n, np.int64))
    _expect_error(cls, "fit with labels other than 0/1", (ValueError,), det.fit, X, y * 2)
    _expect_error(cls, "fit with fewer labels than inputs", (ValueError,), det.fit, X, y[:-1])
    _expect_error(cls, "fit on float images", (ValueError,), det.fit, X.astype(np.float32), y)
    wrong = X[:, 0] if cls.kind == DIFFERENTIAL else X[..., 0]  # single crops / grey images
    _expect_error(cls, "fit on the wrong input layout", (ValueError,), det.fit, wrong, y)
    if det.is_fitted():
        raise _fail(cls, "a failed fit must not leave the detector fitted")

    # fit / shapes / predict
    fitted = det.fit(X, y)
    if fitted is not det:
        raise _fail(cls, "fit must return self")
    if _json_roundtrip(det.get_params()) != got:
        raise _fail(cls, "fit must not change the hyper-parameters")
    s = det.decision_function(X_test)
    if not (isinstance(s, np.ndarray) and s.shape == (n,) and s.dtype == np.float64):
        raise _fail(cls, f"decision_function must return (N,) float64, got {getattr(s, 'shape', s)}")
    s1 = det.decision_function(X_test[:1])
    if not np.allclose(s1, s[:1], rtol=1e-5, atol=1e-6):
        raise _fail(cls, "the score of a sample must not depend on the rest of the batch")
    pred = det.predict(X_test)
    if not np.array_equal(pred, (s >= det.threshold_).astype(np.int64)):
        raise _fail(cls, "predict must be decision_function >= threshold_")

    # score direction on held-out data
    held_out_auc = auc(s[y_test == 0], s[y_test == 1])
    if held_out_auc < min_auc:
        raise _fail(cls, f"held-out AUC {held_out_auc:.3f} < {min_auc} on the synthetic task "
                         "(are scores oriented so that higher = more likely a morph?)")

    # determinism
    s_again = cls(**params).fit(X, y).decision_function(X_test)
    if not np.array_equal(s, s_again):
        raise _fail(cls, "two fits with the same parameters and data gave different scores "
                         f"(max diff {np.abs(s - s_again).max():.3g}); seed everything from "
                         "random_state")

    # persistence
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        det.save(folder)
        back = cls.load(folder)
        if _json_roundtrip(back.get_params()) != got or back.threshold_ != det.threshold_:
            raise _fail(cls, "load must restore the parameters and threshold_")
        if not np.array_equal(back.decision_function(X_test), s):
            raise _fail(cls, "scores after save/load differ from the scores before")
        name = detector_name(cls)
        if name in DETECTORS and DETECTORS.get(name) is cls:
            if not np.array_equal(load_detector(folder).decision_function(X_test), s):
                raise _fail(cls, "load_detector() gave different scores")
        meta = json.loads((folder / MODEL_JSON).read_text())
        for key, value, what in (
            ("detector", "__another_detector__", "another detector's model folder"),
            ("format_version", MODEL_FORMAT_VERSION + 1, "a newer model format"),
            ("state_version", cls.state_version + 1, "a newer state version"),
        ):
            bad = Path(tmp) / key
            bad.mkdir()
            for f in folder.iterdir():
                (bad / f.name).write_bytes(f.read_bytes())
            (bad / MODEL_JSON).write_text(json.dumps({**meta, key: value}))
            _expect_error(cls, f"loading {what}", (ValueError,), cls.load, bad)
        _expect_error(cls, "loading an empty folder", (FileNotFoundError,), cls.load, Path(tmp) / "none")
    return {"auc": held_out_auc}
