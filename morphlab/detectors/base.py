"""The morphing-attack-detector (MAD) contract, its registry and the model-folder format.

The registry lives in :mod:`.registry`, the input checks in :mod:`.checks` and the
model-folder reading in :mod:`.model_folder`; every name is re-exported here.

Two kinds of detector, both following scikit-learn's estimator conventions:

* **S-MAD** (:class:`SingleImageDetector`): looks at the suspected image alone —
  ``fit(images, labels)``, ``decision_function(images)``.
* **D-MAD** (:class:`DifferentialDetector`): compares the suspected (document) image with
  a trusted live probe of the person presenting it — ``fit(pairs, labels)``,
  ``decision_function(pairs)`` where each pair is ``(suspected, live)``.

Inputs are **aligned face crops**: RGB uint8 ``(H, W, 3)`` arrays, all of one size, cut by
:func:`morphlab.detectors.preprocess.align_faces` (which also counts and reports the
images where no face was found). A batch is a sequence of crops or one ``(N, H, W, 3)``
array; a D-MAD batch is a sequence of ``(suspected, live)`` tuples or an
``(N, 2, H, W, 3)`` array.

Labels: ``1`` = morphing attack, ``0`` = bona fide. **Scores: higher means more likely a
morph**; :meth:`Detector.predict` returns ``1`` where ``score >= threshold_`` (the tie
rule of :mod:`morphlab.metrics.pad`).

Conventions for subclasses (checked by :func:`morphlab.detectors.testing.check_detector`):
``__init__`` takes keyword hyper-parameters only and stores them unchanged under the same
names (JSON-serialisable values; ``random_state`` seeds everything random); learned state
ends in ``_``; implement the four hooks:

* ``_fit(X, y)`` learns from the validated arrays and returns the ``(N,)`` training
  scores, or ``None`` (``self`` is accepted as ``None``) to have them computed by
  ``_decision_function``; :meth:`Detector.fit` returns ``self`` either way;
* ``_decision_function(X)`` returns ``(N,)`` float scores, higher = more likely a morph;
* ``_get_state()`` returns the pair ``(state, arrays)``: a dict of JSON values (goes into
  ``detector.json``) and a dict ``{name: numeric NumPy array}`` (goes into
  ``arrays.npz``);
* ``_set_state(state, arrays)`` restores the learned attributes from that pair.

scikit-learn: detectors are scikit-learn binary classifiers (``get_params``/``set_params``
exactly as ``sklearn.base.BaseEstimator``'s, ``classes_ = [0, 1]``, ``score`` =
accuracy at ``threshold_``), so ``sklearn.base.clone``, ``GridSearchCV`` and
``cross_val_score`` work. Give them ``X`` as one NumPy array of aligned crops,
``(N, H, W, 3)`` uint8 (S-MAD) or ``(N, 2, H, W, 3)`` (D-MAD), and ``y`` as 0/1 labels;
score with ``scoring="roc_auc"`` (it reads :meth:`Detector.decision_function`)::

    from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
    faces = align_faces(paths, size=128)             # morphlab.detectors.preprocess
    X, y = faces.crops, labels[faces.index]          # (N, 128, 128, 3) uint8, (N,) 0/1
    cross_val_score(create_detector("freq-logreg"), X, y, cv=StratifiedKFold(5),
                    scoring="roc_auc")
    GridSearchCV(create_detector("lbp-svm"), {"C": [0.1, 1, 10]}, scoring="roc_auc").fit(X, y)

Plain folds mix identities between training and test; for a subject-disjoint estimate
pass ``cv=GroupKFold(k)`` and ``groups=subject_ids``.

Model folder (:meth:`Detector.save`), loaded without executing any code from it:
``detector.json`` (format name and version, detector name, parameters, threshold, JSON
state, free-form metadata) and ``arrays.npz`` (NumPy arrays, read with
``allow_pickle=False``; its SHA-256 is recorded in the JSON).
"""

from __future__ import annotations

import inspect
import io
import json
import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Optional

import numpy as np

from morphlab.detectors.checks import (  # noqa: F401  (_check_crop: re-exported)
    _check_crop,
    check_images,
    check_labels,
    check_pairs,
)
from morphlab.detectors.model_folder import (  # noqa: F401  (the model folder, re-exported)
    MAX_MODEL_JSON_BYTES,
    MODEL_ARRAYS,
    MODEL_FORMAT,
    MODEL_FORMAT_VERSION,
    MODEL_JSON,
    _check_params,
    _Entries,
    _finite_float,
    _finite_number,
    _fits,
    _hint_name,
    _json_default,
    _MissingEntry,
    _no_constant,
    _shown,
    check_params,
    load_detector,
    read_model_arrays,
    read_model_info,
)
from morphlab.detectors.registry import (  # noqa: F401  (register_detector: re-exported)
    DETECTORS,
    detector_name,
    register_detector,
)

log = logging.getLogger(__name__)

BONA_FIDE, MORPH = 0, 1
SINGLE_IMAGE, DIFFERENTIAL = "single-image", "differential"


class NotFittedError(ValueError, AttributeError):
    """A detector was used before :meth:`Detector.fit` (or :meth:`Detector.load`)."""


def create_detector(name_or_class: str | type, **params: Any) -> "Detector":
    """Instantiate a detector from its registered name or from a class.

    Unknown names raise ``KeyError`` listing the valid ones.
    """
    det = DETECTORS.create(name_or_class, **params)
    if not isinstance(det, Detector):
        raise TypeError(f"{name_or_class!r} is not a morphlab detector (got {type(det).__name__})")
    return det


def initial_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The default operating threshold of a freshly trained detector.

    The D-EER operating point of the training scores (:func:`morphlab.metrics.pad.d_eer`),
    moved to the middle of the gap below it: every threshold between the next lower
    training score and that point gives the same training errors, and the middle keeps a
    margin on both sides (for a margin classifier that separates its training data, this
    is close to its natural boundary 0 rather than the lowest training attack score).
    """
    from morphlab.metrics.pad import d_eer

    _, t = d_eer(scores[labels == BONA_FIDE], scores[labels == MORPH])
    below = scores[scores < t]
    if below.size and np.isfinite(t):
        return float((below.max() + t) / 2.0)
    if not np.isfinite(t):  # "everything bona fide" (e.g. constant scores): the same
        finite = scores[np.isfinite(scores)]  # decisions with a number a model file can hold
        t = np.nextafter(finite.max(), np.inf) if finite.size else 0.0
    return float(t)


# -- the contract ----------------------------------------------------------------------
class Detector(ABC):
    """Base class of all morphing attack detectors (use the two subclasses below).

    Class attributes a subclass may set:
        name: fallback name when the class is not registered.
        kind: :data:`SINGLE_IMAGE` or :data:`DIFFERENTIAL` (set by the two bases).
        state_version: version of this detector's saved state; bump it when the state
            layout changes. Folders saved by a newer version are refused on load.
        crop_size: the aligned crop side (pixels) the detector is meant for; pipelines
            use it as the default for :func:`~morphlab.detectors.preprocess.align_faces`.

    Fitted attributes: ``threshold_`` (float; ``score >= threshold_`` → morph),
    ``classes_`` (``[0, 1]``, for scikit-learn) and whatever the subclass learns (names
    ending in ``_``). ``metadata_`` holds free-form JSON metadata saved with the model
    (e.g. how the training set was made).
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    state_version: ClassVar[int] = 1
    crop_size: ClassVar[int] = 128

    # -- parameters: scikit-learn's estimator protocol --------------------------------
    # get_params / set_params / _get_param_names behave exactly like those of
    # sklearn.base.BaseEstimator (tests/detectors/test_detector_contract.py compares them
    # with a BaseEstimator twin), so sklearn.base.clone, GridSearchCV and cross_val_score
    # work. The class does not inherit BaseEstimator only because importing sklearn.base
    # costs about a second, which every command reading the registry (`morphlab list`)
    # would pay; scikit-learn is imported only where it is used.

    #: For scikit-learn < 1.6, which reads the estimator type from this attribute.
    _estimator_type: ClassVar[str] = "classifier"

    @classmethod
    def _param_names(cls) -> list[str]:
        """``__init__``'s keyword parameters in signature order (``TypeError`` on
        ``*args``/``**kwargs``, which the contract forbids)."""
        init = cls.__init__
        if init is object.__init__:
            return []
        names = []
        for p in list(inspect.signature(init).parameters.values())[1:]:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(f"{cls.__name__}.__init__ must not take *args/**kwargs: list "
                                "every hyper-parameter as a keyword argument")
            names.append(p.name)
        return names

    @classmethod
    def _get_param_names(cls) -> list[str]:
        """The hyper-parameter names, sorted (scikit-learn's ``_get_param_names``)."""
        return sorted(cls._param_names())

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The hyper-parameters given to ``__init__`` (defaults included), by name.

        Args:
            deep: also list ``name__sub`` parameters of parameter values that are
                estimators themselves (scikit-learn's convention; morphlab's own
                detectors take JSON values only, so there are none).
        """
        out: dict[str, Any] = {}
        for key in self._get_param_names():
            value = getattr(self, key)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{key}__{k}", v) for k, v in value.get_params().items())
            out[key] = value
        return out

    def set_params(self, **params: Any) -> "Detector":
        """Set hyper-parameters by name (``name__sub`` reaches into nested estimators);
        returns ``self``. Learned state is kept: call :meth:`fit` again to use them.

        Raises:
            ValueError: a name that is not a parameter of this detector.
        """
        if not params:
            return self
        valid = self.get_params(deep=True)
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            key, delim, sub_key = key.partition("__")
            if key not in valid:
                raise ValueError(f"Invalid parameter {key!r} for estimator {self}. "
                                 f"Valid parameters are: {self._get_param_names()!r}.")
            if delim:
                nested.setdefault(key, {})[sub_key] = value
            else:
                setattr(self, key, value)
                valid[key] = value
        for key, sub_params in nested.items():
            valid[key].set_params(**sub_params)
        return self

    def __sklearn_tags__(self):
        """scikit-learn >= 1.6 estimator tags: a binary classifier (labels 0/1) that needs
        ``y`` and takes batches of images, not 2-D feature tables."""
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags

        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags(multi_class=False),
                    input_tags=InputTags(two_d_array=False))

    def __sklearn_is_fitted__(self) -> bool:
        return self.is_fitted()

    @property
    def classes_(self) -> np.ndarray:
        """``[0, 1]`` (bona fide, morph) once fitted: :meth:`decision_function` scores
        ``classes_[1]``, as scikit-learn's binary classifiers do."""
        self._check_fitted()
        return np.array([BONA_FIDE, MORPH])

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy of :meth:`predict` at ``threshold_`` (scikit-learn's classifier
        default). For detection use threshold-free scores: ``scoring="roc_auc"``.
        """
        hit = self.predict(X) == np.asarray(y)
        return float(np.average(hit, weights=sample_weight))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._param_names())
        return f"{type(self).__name__}({args})"

    # -- hooks for subclasses ---------------------------------------------------------
    @abstractmethod
    def _fit(self, X: np.ndarray, y: np.ndarray) -> Optional[np.ndarray]:
        """Learn from validated inputs and labels.

        Args:
            X: ``(N, H, W, 3)`` uint8 crops (S-MAD) or ``(N, 2, H, W, 3)`` pairs (D-MAD),
                already validated.
            y: ``(N,)`` int64 labels, 1 = morph, 0 = bona fide, both classes present.

        Returns:
            One of:

            * the ``(N,)`` training scores (higher = more likely a morph), exactly what
              :meth:`_decision_function` would give on ``X``; saves :meth:`fit` a second
              pass to set the initial threshold;
            * ``None`` (or ``self``, which is taken to mean ``None``): :meth:`fit` then
              scores ``X`` with :meth:`_decision_function`. Return this when
              training-time scores differ (augmentation, dropout).

            :meth:`fit` itself returns ``self``; ``_fit`` need not.
        """

    @abstractmethod
    def _decision_function(self, X: np.ndarray) -> np.ndarray:
        """``(N,)`` float scores of validated inputs (layouts as in :meth:`_fit`); higher
        = more likely a morph; the score of a sample must not depend on the rest of the
        batch."""

    @abstractmethod
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The learned state as a pair ``(state, arrays)``, saved by :meth:`save`.

        Returns:
            ``state``: a dict of JSON values (numbers, strings, bools, ``None``, lists
            and dicts of them; NumPy scalars are converted) — written into
            ``detector.json``. ``arrays``: ``{name: numeric NumPy array}`` (finite
            values, no object arrays) — written into ``arrays.npz``. Either may be
            empty: ``return {"offset": self.offset_}, {}``.
        """

    @abstractmethod
    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore the learned attributes from what :meth:`_get_state` returned.

        Called by :meth:`load` on a fresh ``cls(**params)``, with the JSON ``state`` as
        read back (tuples become lists, NumPy scalars plain numbers) and ``arrays`` as
        read from ``arrays.npz``. A missing key is reported as a damaged model folder;
        raise ``ValueError`` for values that do not fit (e.g. mismatched shapes).
        """

    @abstractmethod
    def _check_X(self, X: Any, what: str) -> np.ndarray:
        """Validate a batch of inputs (set by :class:`SingleImageDetector` and
        :class:`DifferentialDetector`)."""

    # -- public API -------------------------------------------------------------------
    def fit(self, X: Any, y: Any) -> "Detector":
        """Train on aligned crops (S-MAD) or ``(suspected, live)`` pairs (D-MAD).

        Args:
            X: see the module docstring for the accepted layouts.
            y: ``(N,)`` labels, 1 = morph, 0 = bona fide; both classes must be present.

        Returns:
            ``self``, with ``threshold_`` set by :func:`initial_threshold` from the
            training scores (replace it with :meth:`set_threshold`).

        Raises:
            ValueError: unlabelled or single-class data, bad crops, length mismatch.
        """
        if y is None:
            raise ValueError("fit needs labels (1 = morph, 0 = bona fide); got None")
        X = self._check_X(X, "fit")
        y = check_labels(y, len(X))
        train_scores = self._fit(X, y)
        if train_scores is None or train_scores is self:  # "fit returns self" habit: fine
            train_scores = self._check_scores(self._decision_function(X), len(X),
                                              "_decision_function")
        else:
            train_scores = self._check_scores(train_scores, len(X), "_fit")
        self.threshold_ = initial_threshold(train_scores, y)
        self.n_train_ = {"bona_fide": int((y == 0).sum()), "morph": int((y == 1).sum())}
        if not hasattr(self, "metadata_"):
            self.metadata_ = {}
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Morph scores, ``(N,)`` float64; **higher means more likely a morph**."""
        self._check_fitted()
        X = self._check_X(X, "decision_function")
        return self._check_scores(self._decision_function(X), len(X), "_decision_function")

    def predict(self, X: Any) -> np.ndarray:
        """``(N,)`` int64 decisions: 1 (morph) where ``score >= threshold_``, else 0."""
        return (self.decision_function(X) >= self.threshold_).astype(np.int64)

    def set_threshold(self, threshold: float) -> "Detector":
        """Set the operating threshold used by :meth:`predict`; returns ``self``."""
        self._check_fitted()
        t = float(threshold)
        if not np.isfinite(t):
            raise ValueError(f"threshold must be a finite number, got {t}")
        self.threshold_ = t
        return self

    def is_fitted(self) -> bool:
        return hasattr(self, "threshold_")

    def _check_fitted(self) -> None:
        if not self.is_fitted():
            raise NotFittedError(
                f"this {detector_name(type(self))!r} detector is not fitted yet: call fit() "
                "or load a trained model folder"
            )

    def _check_scores(self, s: Any, n: int, hook: str) -> np.ndarray:
        where = f"{type(self).__name__}.{hook}"
        expected = ("the (N,) training scores or None (fit then scores the training data "
                    "with _decision_function)" if hook == "_fit" else "(N,) float scores")
        try:
            s = np.asarray(s, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise RuntimeError(f"{where} returned {type(s).__name__} ({exc}); it must return "
                               f"{expected}") from None
        if s.shape != (n,):
            raise RuntimeError(
                f"{where} returned scores of shape {s.shape} for {n} inputs (a detector "
                f"bug: it must return {expected}, one float per input)"
            )
        if np.isnan(s).any():
            raise RuntimeError(f"{where} returned NaN scores (a detector bug)")
        return s

    # -- persistence ------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the fitted model to ``directory`` (created if needed).

        Files: ``detector.json`` and ``arrays.npz`` (see the module docstring). Both are
        written atomically, arrays first. Nothing is written when the model holds NaN or
        infinite numbers (a threshold, a state value or array), which no loader accepts.

        Returns:
            The folder.

        Raises:
            ValueError: non-finite numbers in the model.
        """
        from morphlab import __version__
        from morphlab.io import atomic_write_bytes, atomic_write_text, sha256_bytes

        self._check_fitted()
        name = detector_name(type(self))
        params = self.get_params(deep=False)
        check_params(type(self), params, Path(directory) / MODEL_JSON)  # loadable
        state, arrays = self._state_pair()
        for k, v in arrays.items():
            if not isinstance(v, np.ndarray) or v.dtype.kind not in "biufc":
                raise TypeError(f"{type(self).__name__}._get_state: array {k!r} must be a numeric "
                                f"NumPy array, got {type(v).__name__}"
                                f"{'' if not isinstance(v, np.ndarray) else ' of dtype ' + str(v.dtype)}"
                                " (put strings and other JSON values in the state dict)")
            if v.dtype.kind in "fc" and not np.isfinite(v).all():
                raise ValueError(f"cannot save {name!r}: state array {k!r} holds NaN or "
                                 "infinite values (a detector bug, or training diverged)")
        if not np.isfinite(self.threshold_):
            raise ValueError(f"cannot save a model whose threshold is {self.threshold_}: "
                             "set a finite one with set_threshold()")
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        blob = buf.getvalue()
        doc = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "detector": name,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "kind": self.kind,
            "state_version": self.state_version,
            "morphlab_version": __version__,
            "params": params,
            "threshold": float(self.threshold_),
            "n_train": getattr(self, "n_train_", None),
            "state": state,
            "arrays_sha256": sha256_bytes(blob),
            "metadata": getattr(self, "metadata_", {}),
        }
        try:
            text = json.dumps(doc, indent=2, default=_json_default, allow_nan=False)
        except ValueError:
            raise ValueError(f"cannot save {name!r}: its parameters, state or metadata hold "
                             "NaN or infinite numbers") from None
        except TypeError as exc:
            raise TypeError(f"cannot save {name!r}: {exc} in its parameters, _get_state dict "
                            "or metadata_ (JSON values only; arrays go in _get_state's second "
                            "element)") from None
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(directory / MODEL_ARRAYS, blob)
        atomic_write_text(directory / MODEL_JSON, text + "\n")
        log.info("saved %s model to %s", name, directory)
        return directory

    def _state_pair(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """:meth:`_get_state`'s ``(state, arrays)``, checked for its shape."""
        pair = self._get_state()
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], dict)
                and isinstance(pair[1], dict) and all(isinstance(k, str) for k in pair[1])):
            got = (f"a {len(pair)}-tuple of ({', '.join(type(p).__name__ for p in pair)})"
                   if isinstance(pair, tuple) else type(pair).__name__)
            raise TypeError(f"{type(self).__name__}._get_state returned {got}; it must return a "
                            "pair (state, arrays): a dict of JSON values and a dict "
                            "{name: numeric NumPy array}, e.g. ({'offset': 0.5}, {})")
        return pair

    @classmethod
    def load(cls, directory: str | Path) -> "Detector":
        """Load a folder written by :meth:`save` of this same detector.

        Raises:
            FileNotFoundError: no model in ``directory``.
            ValueError: the folder holds another detector's model, a newer format or
                state version, or its arrays do not match the JSON.
        """
        doc = read_model_info(directory)
        name = detector_name(cls)
        json_path = Path(directory) / MODEL_JSON
        if doc["detector"] != name:
            raise ValueError(
                f"{directory}: this model folder was saved by detector {doc['detector']!r}, "
                f"not {name!r}; load it with morphlab.detectors.load_detector()"
            )
        if int(doc.get("state_version", 1)) > cls.state_version:
            raise ValueError(
                f"{directory}: saved with state version {doc['state_version']} of "
                f"{name!r}, newer than this installation understands ({cls.state_version}); "
                "upgrade the package that provides it"
            )
        arrays = read_model_arrays(directory, doc)
        check_params(cls, doc["params"], json_path)
        try:
            det = cls(**doc["params"])
        except TypeError as exc:
            raise ValueError(
                f"{directory}: the saved parameters do not fit this version of {name!r} ({exc})"
            ) from None
        try:
            det._set_state(_Entries(doc["state"], f'{json_path}: "state" has no entry'),
                           _Entries(arrays, f"{Path(directory) / MODEL_ARRAYS}: no array"))
        except _MissingEntry as exc:
            raise ValueError(f"{exc.args[0]} (a damaged model folder, or one written by "
                             f"another version of {name!r})") from None
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
            raise ValueError(f"{json_path}: the saved state does not fit {name!r} "
                             f"({type(exc).__name__}: {exc})") from None
        det.threshold_ = float(doc["threshold"])
        det.n_train_ = doc.get("n_train")
        det.metadata_ = doc.get("metadata") or {}
        return det


class SingleImageDetector(Detector):
    """S-MAD: ``fit(images, labels)``, ``decision_function(images)``.

    ``images``: a sequence of aligned RGB uint8 ``(H, W, 3)`` crops or an
    ``(N, H, W, 3)`` array; hooks receive the ``(N, H, W, 3)`` array.
    """

    kind: ClassVar[str] = SINGLE_IMAGE

    def _check_X(self, X: Any, what: str) -> np.ndarray:
        return check_images(X, what=f"{what}: images")


class DifferentialDetector(Detector):
    """D-MAD: ``fit(pairs, labels)``, ``decision_function(pairs)``.

    ``pairs``: a sequence of ``(suspected, live)`` crop tuples or an
    ``(N, 2, H, W, 3)`` array; hooks receive the ``(N, 2, H, W, 3)`` array
    (``[:, 0]`` suspected, ``[:, 1]`` live).
    """

    kind: ClassVar[str] = DIFFERENTIAL

    def _check_X(self, X: Any, what: str) -> np.ndarray:
        return check_pairs(X, what=f"{what}: pairs")
