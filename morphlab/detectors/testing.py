"""Conformance kit for detectors: run :func:`check_detector` in your plug-in's tests.

.. code-block:: python

    from morphlab.detectors.testing import check_detector

    def test_my_detector_conforms():
        check_detector(MyDetector, {"n_estimators": 10})

It trains the detector on a small synthetic task (:func:`make_synthetic_task`) and checks
the contract of :mod:`morphlab.detectors.base`: parameters (and scikit-learn's
``get_params``/``set_params``/``clone``), ``fit`` returning ``self``, one float score
per input, determinism for a fixed ``random_state``, a two-fold scikit-learn
``cross_val_score``, an identical save/load round trip of the ``(state, arrays)`` pair,
clear errors on bad input (unlabelled, single-class or mislabelled data, wrong crops,
unfitted use, another detector's or a newer model folder) and the score direction
(morphs score higher on held-out data). A failed check raises ``AssertionError`` naming
the check and what the contract expects.

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


#: What the base class does for each bad-input check, so a failure says what is expected.
_BY_THE_BASE = ("the base class raises it before calling your hooks: implement _fit / "
                "_decision_function and leave fit, decision_function and predict alone")
_BY_LOAD = "Detector.load raises it: leave save and load alone"


def _expect_error(cls: type, what: str, exc_types: tuple, fn, *args, why: str = _BY_THE_BASE) -> None:
    expected = "/".join(e.__name__ for e in exc_types)
    try:
        fn(*args)
    except exc_types:
        return
    except Exception as exc:  # a deep library traceback instead of a clear error
        raise _fail(cls, f"{what}: raised {type(exc).__name__} ({exc}); the contract expects "
                         f"{expected} ({why})") from exc
    raise _fail(cls, f"{what}: no error raised; the contract expects {expected} ({why})")


def _check_params_protocol(cls: type, params: dict[str, Any], got: dict[str, Any]) -> None:
    """get_params / set_params / sklearn.base.clone on an unfitted detector."""
    from sklearn.base import clone

    det = cls(**params)
    leave = ("the base class provides scikit-learn's get_params(deep=True) and "
             "set_params(**params): do not override them")
    try:
        shallow, deep = det.get_params(deep=False), det.get_params(deep=True)
    except TypeError as exc:
        raise _fail(cls, f"get_params(deep=...) failed ({exc}); {leave}") from None
    if _json_roundtrip(shallow) != got or _json_roundtrip(deep) != got:
        raise _fail(cls, f"get_params(deep=False) and get_params(deep=True) must both give the "
                         f"__init__ parameters {got}; {leave}")
    other = cls(**params)
    if other.set_params(**_json_roundtrip(shallow)) is not other:
        raise _fail(cls, f"set_params must return self; {leave}")
    if _json_roundtrip(other.get_params()) != got:
        raise _fail(cls, f"set_params(**get_params()) must give the same "
                         f"parameters (got {other.get_params()}); {leave}")
    _expect_error(cls, "set_params with an unknown parameter name", (ValueError,),
                  lambda: other.set_params(no_such_parameter_=1), why=leave)
    try:
        twin = clone(det)
    except Exception as exc:
        raise _fail(cls, f"sklearn.base.clone failed ({type(exc).__name__}: {exc}); the contract "
                         "expects __init__ to take keyword hyper-parameters only and store each "
                         f"unchanged as self.<name>; {leave}") from None
    if type(twin) is not cls or twin is det or _json_roundtrip(twin.get_params()) != got:
        raise _fail(cls, "sklearn.base.clone must give a new detector of the same class with "
                         "the same parameters")


def _check_sklearn_fitted(cls: type, params: dict[str, Any], det: Detector, got: dict[str, Any],
                          X: np.ndarray, y: np.ndarray) -> float:
    """clone of a fitted detector, classes_, and a tiny cross_val_score (its mean AUC)."""
    from sklearn.base import clone, is_classifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    twin = clone(det)
    if twin.is_fitted() or _json_roundtrip(twin.get_params()) != got:
        raise _fail(cls, "sklearn.base.clone of a fitted detector must give an unfitted one with "
                         "the same parameters (learned state ends in '_' and is set by _fit or "
                         "_set_state only, never by __init__)")
    if not is_classifier(det) or list(det.classes_) != [0, 1]:
        raise _fail(cls, "scikit-learn must see a binary classifier with classes_ == [0, 1] "
                         "(provided by the base class: do not override classes_ or "
                         "__sklearn_tags__)")
    # tiny: 8 bona fide + 8 morphs, two folds of 8 training samples
    idx = np.concatenate([np.flatnonzero(y == 0)[:8], np.flatnonzero(y == 1)[:8]])
    try:
        cv = cross_val_score(cls(**params), X[idx], y[idx], scoring="roc_auc",
                             cv=StratifiedKFold(2, shuffle=True, random_state=0),
                             error_score="raise")
    except Exception as exc:
        raise _fail(cls, f"sklearn cross_val_score(detector, X, y, scoring='roc_auc') failed "
                         f"({type(exc).__name__}: {exc}); the contract expects fit(X, y) and "
                         "decision_function(X) to work on any subset of an (N, ...) uint8 "
                         "array, e.g. 8 samples") from exc
    if cv.shape != (2,) or not np.isfinite(cv).all():
        raise _fail(cls, f"cross_val_score gave {cv} for two folds; expected two finite AUCs")
    return float(cv.mean())


def check_detector(cls: type, params: Optional[dict[str, Any]] = None, *, n: int = 48,
                   size: int = 64, seed: int = 0, min_auc: float = 0.8) -> dict[str, float]:
    """Check that a detector class honours the morphlab detector contract.

    What is checked, in order (each failure names the check and what is expected):

    1. parameters: ``__init__`` stores its keyword hyper-parameters unchanged, they are
       JSON-serialisable, ``cls(**get_params())`` gives them back; scikit-learn's
       ``get_params(deep=...)``, ``set_params(**params)`` (returns ``self``, rejects
       unknown names) and ``sklearn.base.clone`` work;
    2. bad input (no, single-class or non-0/1 labels, float or wrongly shaped crops,
       scoring before ``fit``) gives ``ValueError``/``NotFittedError`` and leaves the
       detector unfitted;
    3. ``fit`` returns ``self`` and keeps the parameters; ``decision_function`` gives
       ``(N,)`` float64, a sample's score does not depend on its batch; ``predict`` is
       ``score >= threshold_``; held-out AUC >= ``min_auc`` (higher = morph);
    4. two fits with the same parameters give identical scores (seeded);
    5. a clone of the fitted detector is unfitted; ``classes_ == [0, 1]``; a two-fold
       ``cross_val_score(..., scoring="roc_auc")`` on 16 samples runs;
    6. ``save``/``load`` (the ``(state, arrays)`` pair of ``_get_state``/``_set_state``)
       reproduce the scores; another detector's, a newer or an empty model folder is
       refused.

    Args:
        cls: the detector class (a subclass of ``SingleImageDetector`` or
            ``DifferentialDetector``).
        params: keyword hyper-parameters for quick training (e.g. few epochs).
        n: training-set size of the synthetic task (the held-out set has the same size).
        size: synthetic crop side in pixels.
        seed: seed of the synthetic data.
        min_auc: the held-out AUC (morphs above bona fide) the detector must reach.

    Returns:
        ``{"auc": held-out AUC, "cv_auc": mean AUC of the two cross-validation folds}``.

    Raises:
        AssertionError: naming the first check that failed and what the contract expects.
    """
    params = dict(params or {})
    if not (isinstance(cls, type) and issubclass(cls, Detector)):
        raise AssertionError(f"{cls!r} is not a subclass of morphlab.detectors.base.Detector; "
                             "subclass SingleImageDetector (S-MAD) or DifferentialDetector (D-MAD)")
    if cls.kind not in (SINGLE_IMAGE, DIFFERENTIAL):
        raise _fail(cls, f"kind must be {SINGLE_IMAGE!r} or {DIFFERENTIAL!r}, got {cls.kind!r} "
                         "(set by SingleImageDetector / DifferentialDetector: subclass one of them)")

    # parameters: stored unchanged, round trip through get_params and JSON
    stored = ("__init__ takes keyword hyper-parameters only and stores each unchanged as "
              "self.<name> = <name> (convert and validate them in _fit instead)")
    try:
        det = cls(**params)
        got = det.get_params()
    except TypeError as exc:
        raise _fail(cls, f"cls(**params) / get_params() failed ({exc}); the contract expects: "
                         f"{stored}") from None
    for k, v in params.items():
        if got.get(k) != v:
            raise _fail(cls, f"parameter {k!r} given as {v!r} reads back as {got.get(k)!r}; the "
                             f"contract expects: {stored}")
    try:
        got = _json_roundtrip(got)  # what a saved model folder gives back
    except TypeError as exc:
        raise _fail(cls, f"parameters must be JSON-serialisable (they are saved in "
                         f"{MODEL_JSON}): {exc}") from None
    if _json_roundtrip(cls(**got).get_params()) != got:
        raise _fail(cls, f"cls(**get_params()) must give the same parameters ({stored})")
    _check_params_protocol(cls, params, got)

    X, y = make_synthetic_task(cls.kind, n, size=size, seed=seed)
    X_test, y_test = make_synthetic_task(cls.kind, n, size=size, seed=seed + 1000)

    # bad input, before and around fitting
    _expect_error(cls, "decision_function before fit", (NotFittedError,), det.decision_function, X,
                  why="the base class raises it until fit or load sets threshold_: set no "
                      "fitted attribute (a name ending in '_') in __init__, and leave "
                      "decision_function alone")
    _expect_error(cls, "fit without labels", (ValueError,), det.fit, X, None)
    _expect_error(cls, "fit on bona fide only", (ValueError,), det.fit, X, np.zeros(n, np.int64))
    _expect_error(cls, "fit on morphs only", (ValueError,), det.fit, X, np.ones(n, np.int64))
    _expect_error(cls, "fit with labels other than 0/1", (ValueError,), det.fit, X, y * 2)
    _expect_error(cls, "fit with fewer labels than inputs", (ValueError,), det.fit, X, y[:-1])
    _expect_error(cls, "fit on float images", (ValueError,), det.fit, X.astype(np.float32), y)
    wrong = X[:, 0] if cls.kind == DIFFERENTIAL else X[..., 0]  # single crops / grey images
    _expect_error(cls, "fit on the wrong input layout", (ValueError,), det.fit, wrong, y)
    if det.is_fitted():
        raise _fail(cls, "a failed fit must not leave the detector fitted (threshold_ is set by "
                         "the base class after _fit succeeds: do not set it yourself)")

    # fit / shapes / predict
    fitted = det.fit(X, y)
    if fitted is not det:
        raise _fail(cls, "fit must return self (do not override fit: implement _fit, which "
                         "returns the (N,) training scores or None)")
    if _json_roundtrip(det.get_params()) != got:
        raise _fail(cls, "fit must not change the hyper-parameters (store what _fit learns in "
                         "attributes ending in '_')")
    s = det.decision_function(X_test)
    if not (isinstance(s, np.ndarray) and s.shape == (n,) and s.dtype == np.float64):
        raise _fail(cls, f"decision_function must return (N,) float64, got {getattr(s, 'shape', s)} "
                         "(do not override it: _decision_function returns one float per input)")
    s1 = det.decision_function(X_test[:1])
    if not np.allclose(s1, s[:1], rtol=1e-5, atol=1e-6):
        raise _fail(cls, "the score of a sample must not depend on the rest of the batch "
                         "(no batch statistics in _decision_function: learn them in _fit)")
    pred = det.predict(X_test)
    if not np.array_equal(pred, (s >= det.threshold_).astype(np.int64)):
        raise _fail(cls, "predict must be decision_function >= threshold_ (do not override predict)")

    # score direction on held-out data
    held_out_auc = auc(s[y_test == 0], s[y_test == 1])
    if held_out_auc < min_auc:
        raise _fail(cls, f"held-out AUC {held_out_auc:.3f} < {min_auc} on the synthetic task; "
                         "the contract expects scores where higher = more likely a morph (negate "
                         "a library's score if it points the other way)")

    # determinism
    s_again = cls(**params).fit(X, y).decision_function(X_test)
    if not np.array_equal(s, s_again):
        raise _fail(cls, "two fits with the same parameters and data gave different scores "
                         f"(max diff {np.abs(s - s_again).max():.3g}); seed everything from "
                         "random_state")

    # scikit-learn model selection
    cv_auc = _check_sklearn_fitted(cls, params, det, got, X, y)

    # persistence
    state_pair = ("_get_state must return the pair (state, arrays) — a dict of JSON values "
                  "and a dict {name: numeric NumPy array} — holding everything "
                  "_decision_function uses, and _set_state must restore every learned "
                  "attribute from it (JSON gives tuples back as lists); leave save/load alone")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        det.save(folder)
        back = cls.load(folder)
        if _json_roundtrip(back.get_params()) != got or back.threshold_ != det.threshold_:
            raise _fail(cls, f"load must restore the parameters and threshold_ ({state_pair})")
        if not np.array_equal(back.decision_function(X_test), s):
            raise _fail(cls, f"scores after save/load differ from the scores before: {state_pair}")
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
            _expect_error(cls, f"loading {what}", (ValueError,), cls.load, bad, why=_BY_LOAD)
        _expect_error(cls, "loading an empty folder", (FileNotFoundError,), cls.load,
                      Path(tmp) / "none", why=_BY_LOAD)
    return {"auc": held_out_auc, "cv_auc": cv_auc}
