"""The morphing-attack-detector (MAD) contract, its registry and the model-folder format.

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

from morphlab._registry import Registry

log = logging.getLogger(__name__)

#: Detectors; plug-ins use the ``morphlab.detectors`` entry-point group.
DETECTORS: Registry = Registry(
    "detector",
    "morphlab.detectors",
    builtins=(
        "morphlab.detectors.lbp_svm",
        "morphlab.detectors.freq_logreg",
        "morphlab.detectors.cnn",
        "morphlab.detectors.embedding_diff",
        "morphlab.detectors.deep_svm",
    ),
)

#: Class decorator: ``@register_detector("lbp-svm")``. Registering a name twice raises.
register_detector = DETECTORS.register

BONA_FIDE, MORPH = 0, 1
SINGLE_IMAGE, DIFFERENTIAL = "single-image", "differential"

MODEL_FORMAT = "morphlab-detector"
#: Version of the model-folder layout written by :meth:`Detector.save`.
MODEL_FORMAT_VERSION = 1
MODEL_JSON, MODEL_ARRAYS = "detector.json", "arrays.npz"


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


def detector_name(cls: type) -> str:
    """The name a detector class is known by: its registry name, else ``cls.name``."""
    return getattr(cls, "registry_name", None) or getattr(cls, "name", "") or cls.__qualname__


# -- input validation ------------------------------------------------------------------
def _check_crop(x: Any, where: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(
            f"{where}: expected an aligned RGB uint8 face crop of shape (H, W, 3), got "
            f"{a.dtype} {a.shape} (use morphlab.detectors.preprocess.align_faces)"
        )
    return a


def check_images(images: Any, *, what: str = "images") -> np.ndarray:
    """Validate an S-MAD batch and return it as one ``(N, H, W, 3)`` uint8 array.

    Raises:
        ValueError: empty batch, a crop that is not RGB uint8 ``(H, W, 3)``, or crops of
            different sizes.
    """
    if isinstance(images, np.ndarray) and images.ndim == 4:
        batch = [images[i] for i in range(len(images))]
    elif isinstance(images, (str, Path)) or (isinstance(images, np.ndarray) and images.ndim < 4):
        raise ValueError(
            f"{what}: expected a sequence of aligned face crops or an (N, H, W, 3) uint8 "
            f"array, got {type(images).__name__} {getattr(images, 'shape', '')}".rstrip()
        )
    else:
        batch = list(images)
    if not batch:
        raise ValueError(f"{what}: no images given")
    crops = [_check_crop(x, f"{what}[{i}]") for i, x in enumerate(batch)]
    shapes = {c.shape for c in crops}
    if len(shapes) > 1:
        raise ValueError(
            f"{what}: all crops must have one size, got {sorted(shapes)}; align them with "
            "morphlab.detectors.preprocess.align_faces(size=...)"
        )
    return np.stack(crops)


def check_pairs(pairs: Any, *, what: str = "pairs") -> np.ndarray:
    """Validate a D-MAD batch and return it as one ``(N, 2, H, W, 3)`` uint8 array.

    Each pair is ``(suspected, live)``; both crops must share one size.
    """
    if isinstance(pairs, np.ndarray):
        if pairs.ndim != 5 or pairs.shape[1] != 2:
            raise ValueError(
                f"{what}: expected (suspected, live) pairs as an (N, 2, H, W, 3) uint8 array "
                f"or a sequence of 2-tuples, got an array of shape {pairs.shape}"
            )
        flat = check_images(pairs.reshape((-1,) + pairs.shape[2:]), what=what)
        return flat.reshape(pairs.shape)
    items = list(pairs)
    if not items:
        raise ValueError(f"{what}: no pairs given")
    for i, p in enumerate(items):
        if isinstance(p, np.ndarray) and p.ndim == 4 and p.shape[0] == 2:
            continue
        if not isinstance(p, (tuple, list)) or len(p) != 2:
            raise ValueError(f"{what}[{i}]: expected a (suspected, live) pair of face crops")
    flat = check_images([c for p in items for c in p], what=what)
    return flat.reshape((len(items), 2) + flat.shape[1:])


def check_labels(labels: Any, n: int) -> np.ndarray:
    """Validate training labels: ``n`` values in {0, 1} with both classes present.

    Returns:
        ``(n,)`` int64 array (1 = morph, 0 = bona fide).
    """
    if labels is None:
        raise ValueError("fit needs labels (1 = morph, 0 = bona fide); got None")
    y = np.asarray(labels)
    if y.ndim != 1 or y.size != n:
        raise ValueError(f"got {n} training samples but labels of shape {y.shape}")
    if y.dtype == bool:
        y = y.astype(np.int64)
    if y.dtype.kind not in "iuf" or not np.isin(y, (0, 1)).all():
        bad = sorted({str(v) for v in np.unique(y)} - {"0", "1", "0.0", "1.0"})[:5]
        raise ValueError(f"labels must be 0 (bona fide) or 1 (morph); found {', '.join(bad)}")
    y = y.astype(np.int64)
    n_morph = int(y.sum())
    if n_morph == 0 or n_morph == n:
        missing = "morph (label 1)" if n_morph == 0 else "bona fide (label 0)"
        raise ValueError(
            f"training data has a single class: all {n} samples are "
            f"{'bona fide' if n_morph == 0 else 'morphs'}; add {missing} samples"
        )
    return y


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


class _MissingEntry(KeyError):
    """A saved state or array a detector asked for is not in the model folder."""


class _Entries(dict):
    """A dict whose missing keys raise :class:`_MissingEntry` naming the file."""

    def __init__(self, data: dict, where: str) -> None:
        super().__init__(data)
        self._where = where

    def __missing__(self, key: Any) -> Any:
        raise _MissingEntry(f"{self._where} {key!r}")


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


# -- model folders ---------------------------------------------------------------------
#: Largest ``detector.json`` read (the arrays live in ``arrays.npz``).
MAX_MODEL_JSON_BYTES = 64 << 20


def _finite_float(text: str) -> float:
    v = float(text)
    if not np.isfinite(v):
        raise ValueError(f"number {text} is out of range (infinite)")
    return v


def _no_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def _finite_number(v: Any) -> Optional[float]:
    """``float(v)`` if ``v`` is a finite JSON number (not a bool), else ``None``."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        f = float(v)
    except OverflowError:
        return None
    return f if np.isfinite(f) else None


def _shown(v: Any) -> str:
    text = json.dumps(v) if isinstance(v, (str, int, float, bool, type(None))) else type(v).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def read_model_info(directory: str | Path) -> dict[str, Any]:
    """The parsed ``detector.json`` of a model folder, after format checks.

    Checks: valid UTF-8 JSON (no ``NaN``/``Infinity``/out-of-range numbers, bounded size
    and nesting), the format name and version, and the types of the fields every model
    has (``threshold`` a finite number, ``params``/``state`` objects, …).

    Raises:
        FileNotFoundError: no ``detector.json`` in ``directory``.
        ValueError: not a morphlab detector folder, a newer format version, or a damaged
            description; the message names the file and the problem.
    """
    path = Path(directory) / MODEL_JSON
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: not found; {directory} is not a detector model folder "
            "(train one with `morphlab detect train`)"
        )
    size = path.stat().st_size
    if size > MAX_MODEL_JSON_BYTES:
        raise ValueError(f"{path}: {size:,} bytes, too large for a model description "
                         f"(limit {MAX_MODEL_JSON_BYTES:,}); not a morphlab detector model")
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"), parse_float=_finite_float,
                         parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON (not UTF-8 text: {exc.reason})") from None
    except RecursionError:
        raise ValueError(f"{path}: not a morphlab detector model (JSON nested too deeply)") from None
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path}: not a morphlab detector model (format {_shown(doc.get('format'))})"
                         if isinstance(doc, dict) else f"{path}: not a morphlab detector model")
    version = doc.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version > MODEL_FORMAT_VERSION:
        raise ValueError(
            f"{path}: model format version {_shown(version)} is newer than this morphlab "
            f"understands ({MODEL_FORMAT_VERSION}); upgrade morphlab"
            if isinstance(version, int) and not isinstance(version, bool) else
            f"{path}: \"format_version\" must be an integer, got {_shown(version)}"
        )
    for key in ("detector", "params", "threshold", "state"):
        if key not in doc:
            raise ValueError(f"{path}: incomplete model description (no {key!r})")
    if not isinstance(doc["detector"], str) or not doc["detector"]:
        raise ValueError(f"{path}: \"detector\" must be a detector name, got {_shown(doc['detector'])}")
    if _finite_number(doc["threshold"]) is None:
        raise ValueError(f"{path}: \"threshold\" must be a finite number, got {_shown(doc['threshold'])}")
    for key in ("params", "state"):
        if not isinstance(doc[key], dict):
            raise ValueError(f"{path}: {key!r} must be a JSON object, got {_shown(doc[key])}")
    sv = doc.get("state_version", 1)
    if isinstance(sv, bool) or not isinstance(sv, int):
        raise ValueError(f"{path}: \"state_version\" must be an integer, got {_shown(sv)}")
    for key, kinds in (("arrays_sha256", (str,)), ("metadata", (dict,)), ("n_train", (dict,))):
        if doc.get(key) is not None and not isinstance(doc[key], kinds):
            raise ValueError(f"{path}: {key!r} must be a {'string' if kinds == (str,) else 'JSON object'}, "
                             f"got {_shown(doc[key])}")
    return doc


def read_model_arrays(directory: str | Path, doc: dict[str, Any]) -> dict[str, np.ndarray]:
    """The arrays of a model folder, checked against ``doc["arrays_sha256"]`` when recorded.

    Read with ``allow_pickle=False``; only numeric arrays of finite values are accepted.

    Raises:
        FileNotFoundError: no ``arrays.npz``.
        ValueError: checksum mismatch, not an ``.npz`` archive, object arrays, NaN or
            infinite values (the message names the file).
    """
    import zipfile

    from morphlab.io import sha256_bytes

    path = Path(directory) / MODEL_ARRAYS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing model arrays (an incomplete model folder)")
    blob = path.read_bytes()
    if doc.get("arrays_sha256") and sha256_bytes(blob) != doc["arrays_sha256"]:
        raise ValueError(f"{path}: does not match {MODEL_JSON} (checksum differs)")
    unchecked = "" if doc.get("arrays_sha256") else f"; {MODEL_JSON} records no checksum"
    if not zipfile.is_zipfile(io.BytesIO(blob)):
        raise ValueError(f"{path}: not a NumPy .npz archive (corrupt or replaced{unchecked})")
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ValueError(f"{path}: holds object arrays (pickled Python objects), which "
                             "morphlab never loads; not a morphlab model file") from None
        raise ValueError(f"{path}: corrupt .npz archive ({exc}{unchecked})") from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile, RuntimeError) as exc:
        raise ValueError(f"{path}: corrupt .npz archive ({type(exc).__name__}: {exc}{unchecked})") from None
    for k, v in arrays.items():
        if v.dtype.kind not in "biufc":
            raise ValueError(f"{path}: array {k!r} has dtype {v.dtype}, not a number type")
        if v.dtype.kind in "fc" and not np.isfinite(v).all():
            raise ValueError(f"{path}: array {k!r} holds NaN or infinite values")
    return arrays


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a parameter's type hint (unknown hints: yes)."""
    import collections.abc
    import types
    import typing

    if hint is Any:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool) or (type(value) is int and value in (0, 1))
    if hint is int:
        return (isinstance(value, int) and not isinstance(value, bool)) or \
            (isinstance(value, float) and value.is_integer())
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint in (list, tuple) or origin in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        inner = [a for a in args if a is not Ellipsis]
        return len(inner) != 1 or all(_fits(v, inner[0]) for v in value)
    return True


def _hint_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def check_params(cls: type, params: dict[str, Any], path: Path) -> None:
    """Refuse hyper-parameters whose JSON type cannot be what ``cls.__init__`` declares
    (integral floats pass for ints, ints for floats; unknown hints pass).

    Raises:
        ValueError: ``"{path}: parameter 'x' = … does not fit 'name' (expected int)"``.
    """
    import typing

    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # unresolvable annotations: nothing to check against
        return
    for key, value in params.items():
        if key in hints and not _fits(value, hints[key]):
            raise ValueError(f"{path}: parameter {key!r} = {_shown(value)} does not fit "
                             f"{detector_name(cls)!r} (expected {_hint_name(hints[key])})")


_check_params = check_params  # the name morphlab.experiments.config imports


def load_detector(directory: str | Path) -> Detector:
    """Load any registered detector's model folder (the class is found by its name).

    Only registered classes are ever instantiated; nothing in the folder is executed.
    """
    doc = read_model_info(directory)
    try:
        cls = DETECTORS.get(doc["detector"])
    except KeyError as exc:
        raise ValueError(
            f"{directory}: saved by detector {doc['detector']!r}, which is not installed "
            f"({exc.args[0]})"
        ) from None
    return cls.load(directory)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")
