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
ends in ``_``; implement :meth:`Detector._fit`, :meth:`Detector._decision_function`,
:meth:`Detector._get_state` and :meth:`Detector._set_state`.

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

    Fitted attributes: ``threshold_`` (float; ``score >= threshold_`` → morph) and
    whatever the subclass learns (names ending in ``_``). ``metadata_`` holds free-form
    JSON metadata saved with the model (e.g. how the training set was made).
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    state_version: ClassVar[int] = 1
    crop_size: ClassVar[int] = 128

    # -- parameters (scikit-learn style) ----------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        names = []
        for p in list(sig.parameters.values())[1:]:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(f"{cls.__name__}.__init__ must not take *args/**kwargs")
            names.append(p.name)
        return names

    def get_params(self) -> dict[str, Any]:
        """The hyper-parameters given to ``__init__`` (defaults included)."""
        return {k: getattr(self, k) for k in self._param_names()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- hooks for subclasses ---------------------------------------------------------
    @abstractmethod
    def _fit(self, X: np.ndarray, y: np.ndarray) -> Optional[np.ndarray]:
        """Learn from validated inputs and labels; may return the training scores.

        Returning ``(N,)`` training scores saves :meth:`fit` a second pass to set the
        initial threshold; return ``None`` when training-time scores differ from
        :meth:`_decision_function` (e.g. augmentation, dropout).
        """

    @abstractmethod
    def _decision_function(self, X: np.ndarray) -> np.ndarray:
        """``(N,)`` scores of validated inputs; higher = more likely a morph."""

    @abstractmethod
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Learned state as ``(json_dict, {name: array})`` (arrays: numeric dtypes only)."""

    @abstractmethod
    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`_get_state` returned."""

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
        if train_scores is None:
            train_scores = self._decision_function(X)
        train_scores = self._check_scores(train_scores, len(X))
        self.threshold_ = initial_threshold(train_scores, y)
        self.n_train_ = {"bona_fide": int((y == 0).sum()), "morph": int((y == 1).sum())}
        if not hasattr(self, "metadata_"):
            self.metadata_ = {}
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Morph scores, ``(N,)`` float64; **higher means more likely a morph**."""
        self._check_fitted()
        X = self._check_X(X, "decision_function")
        return self._check_scores(self._decision_function(X), len(X))

    def predict(self, X: Any) -> np.ndarray:
        """``(N,)`` int64 decisions: 1 (morph) where ``score >= threshold_``, else 0."""
        return (self.decision_function(X) >= self.threshold_).astype(np.int64)

    def set_threshold(self, threshold: float) -> "Detector":
        """Set the operating threshold used by :meth:`predict`; returns ``self``."""
        self._check_fitted()
        t = float(threshold)
        if np.isnan(t):
            raise ValueError("threshold must be a number, got NaN")
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

    def _check_scores(self, s: Any, n: int) -> np.ndarray:
        s = np.asarray(s, dtype=np.float64)
        if s.shape != (n,):
            raise RuntimeError(
                f"{type(self).__name__} returned scores of shape {s.shape} for {n} inputs "
                "(a detector bug: decision_function must return one float per input)"
            )
        if np.isnan(s).any():
            raise RuntimeError(f"{type(self).__name__} returned NaN scores (a detector bug)")
        return s

    # -- persistence ------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the fitted model to ``directory`` (created if needed).

        Files: ``detector.json`` and ``arrays.npz`` (see the module docstring). Both are
        written atomically, arrays first.

        Returns:
            The folder.
        """
        from morphlab import __version__
        from morphlab.io import atomic_write_bytes, atomic_write_text, sha256_bytes

        self._check_fitted()
        state, arrays = self._get_state()
        for k, v in arrays.items():
            if not isinstance(v, np.ndarray) or v.dtype.kind not in "biufc":
                raise TypeError(f"state array {k!r} must be a numeric NumPy array, got {type(v)}")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        blob = buf.getvalue()
        atomic_write_bytes(directory / MODEL_ARRAYS, blob)
        doc = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "detector": detector_name(type(self)),
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "kind": self.kind,
            "state_version": self.state_version,
            "morphlab_version": __version__,
            "params": self.get_params(),
            "threshold": self.threshold_,
            "n_train": getattr(self, "n_train_", None),
            "state": state,
            "arrays_sha256": sha256_bytes(blob),
            "metadata": getattr(self, "metadata_", {}),
        }
        atomic_write_text(directory / MODEL_JSON, json.dumps(doc, indent=2, default=_json_default) + "\n")
        log.info("saved %s model to %s", doc["detector"], directory)
        return directory

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
        path = Path(directory) / MODEL_ARRAYS
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing model arrays (an incomplete model folder)")
        blob = path.read_bytes()
        from morphlab.io import sha256_bytes

        if doc.get("arrays_sha256") and sha256_bytes(blob) != doc["arrays_sha256"]:
            raise ValueError(f"{path}: does not match {MODEL_JSON} (checksum differs)")
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        try:
            det = cls(**doc["params"])
        except TypeError as exc:
            raise ValueError(
                f"{directory}: the saved parameters do not fit this version of {name!r} ({exc})"
            ) from None
        det._set_state(doc["state"], arrays)
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


# -- model folders ---------------------------------------------------------------------
def read_model_info(directory: str | Path) -> dict[str, Any]:
    """The parsed ``detector.json`` of a model folder, after format checks.

    Raises:
        FileNotFoundError: no ``detector.json`` in ``directory``.
        ValueError: not a morphlab detector folder, or a newer format version.
    """
    path = Path(directory) / MODEL_JSON
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: not found; {directory} is not a detector model folder "
            "(train one with `morphlab detect train`)"
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path}: not a morphlab detector model (format {doc.get('format')!r})"
                         if isinstance(doc, dict) else f"{path}: not a morphlab detector model")
    version = doc.get("format_version")
    if not isinstance(version, int) or version > MODEL_FORMAT_VERSION:
        raise ValueError(
            f"{path}: model format version {version!r} is newer than this morphlab "
            f"understands ({MODEL_FORMAT_VERSION}); upgrade morphlab"
        )
    for key in ("detector", "params", "threshold", "state"):
        if key not in doc:
            raise ValueError(f"{path}: incomplete model description (no {key!r})")
    return doc


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
