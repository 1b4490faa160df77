"""``deep-svm`` (S-MAD): features of the embedded face-recognition networks → SVM.

The deep-feature single-image baseline of the literature (Raghavendra et al., 2017;
Scherhag et al., 2020): a network trained to recognise faces has learnt what a real face
looks like at every scale, and a morph's blended texture and double contours shift its
activations. Per aligned crop, the features are

* the L2-normalised embedding of every system in ``systems`` (any of the recognition
  registry: ``mobilefacenet``, ``dlib-resnet``, ``facenet``, or ``"NAME=MODEL_PATH"``),
* for each block in ``layers``, the per-channel mean and standard deviation over the
  image of an intermediate activation of MobileFaceNet (:data:`MOBILEFACENET_LAYERS`;
  read in the same forward pass as its embedding, so nearly free). These texture
  statistics keep what the identity embedding is trained to discard — the grain and
  sharpness that blending and resampling change,

concatenated, standardised, then a class-balanced SVM (linear by default, or RBF). The
score is the SVM's signed distance (higher = more likely a morph).

Defaults — MobileFaceNet's embedding plus its ``block4`` statistics (14 x 14 x 128, the
deepest block before the embedding head), linear kernel — were picked on a subject-disjoint
FRLL split (``benchmarks/frll_mad_crossval.py``, seed 0) among embeddings of
mobilefacenet / dlib-resnet / facenet, the three layers and both kernels: the embeddings
alone detect poorly (D-EER 20-27 %), the shallow layers catch complete morphs but not
spliced ones, and a linear head generalises from complete to spliced morphs better than
an RBF one. That choice was made on the split the figures come from, so those figures
are optimistic for deep-svm.

Crops carry no landmarks: every MAD crop is aligned to one template, so each system is
given :func:`morphlab.detectors.preprocess.canonical_face` — the mean landmark layout of
a crop of that size — and aligns from it as it would from detected landmarks (as
``embedding-diff`` does).

Features are cached in memory per crop content and feature set (:data:`CACHE_SIZE`
crops), so refitting on the same crops (cross-validation, a grid search, the
conformance kit) costs no second pass through the networks. The model folder records
each system's version and refuses to load when the installed system embeds differently.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections import OrderedDict
from typing import Any, Optional, Sequence

import numpy as np

from morphlab.detectors._progress import progress_enabled
from morphlab.detectors._sklearn import ScaledSVMMixin
from morphlab.detectors.base import SingleImageDetector, register_detector
from morphlab.detectors.preprocess import canonical_face

log = logging.getLogger(__name__)

#: Intermediate MobileFaceNet activations ``layers`` may name: block → (tensor, shape).
MOBILEFACENET_LAYERS = {
    "stem": "MobileFaceNet/MobileFaceNet/Conv2d_0/add",  # 56x56x64, after the first conv
    "block2": "MobileFaceNet/MobileFaceNet/Conv2d_2_InvResBlock_4/Add",  # 28x28x64
    "block4": "MobileFaceNet/MobileFaceNet/Conv2d_4_InvResBlock_4/Add",  # 14x14x128
}

#: Crops whose features are kept in memory (per feature set), least recently used dropped.
CACHE_SIZE = 20000
_CACHE: "OrderedDict[tuple[str, bytes], np.ndarray]" = OrderedDict()


class _MobileFaceNetTaps:
    """MobileFaceNet's embedding plus the per-channel statistics of some inner tensors,
    from one forward pass of a LiteRT interpreter that keeps its intermediate tensors."""

    def __init__(self, system: Any, layers: Sequence[str]) -> None:
        from morphlab.recognition.mobilefacenet import MODEL_BATCH, _interpreter_class

        self.system, self.layers, self.batch = system, list(layers), MODEL_BATCH
        with warnings.catch_warnings():  # "intended for debugging": we read 1-3 tensors
            warnings.simplefilter("ignore")
            interp = _interpreter_class()(model_path=str(system.model_path),
                                          experimental_preserve_all_tensors=True)
        interp.allocate_tensors()
        index = {d["name"]: d["index"] for d in interp.get_tensor_details()}
        missing = [MOBILEFACENET_LAYERS[k] for k in self.layers if MOBILEFACENET_LAYERS[k] not in index]
        if missing:
            raise ValueError(f"{system.model_path}: no tensor {missing[0]!r} in this MobileFaceNet "
                             "model (deep-svm layers need sirius-ai's MobileFaceNet.tflite)")
        self.interp = interp
        self.tensors = [index[MOBILEFACENET_LAYERS[k]] for k in self.layers]
        self.inp = interp.get_input_details()[0]["index"]
        self.out = interp.get_output_details()[0]["index"]

    def __call__(self, crops: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """``(embeddings (N, 192), [stats (N, 2C) per layer])`` of 112 px aligned crops."""
        x = (crops.astype(np.float32) - 127.5) / 128.0
        n = len(x)
        if n % self.batch:
            x = np.concatenate([x, np.repeat(x[-1:], self.batch - n % self.batch, axis=0)])
        emb, stats = [], [[] for _ in self.tensors]
        for i in range(0, len(x), self.batch):
            self.interp.set_tensor(self.inp, np.ascontiguousarray(x[i:i + self.batch]))
            self.interp.invoke()
            emb.append(np.array(self.interp.get_tensor(self.out), dtype=np.float64))
            for s, t in zip(stats, self.tensors):
                a = np.asarray(self.interp.get_tensor(t), dtype=np.float64)  # (B, h, w, C)
                s.append(np.concatenate([a.mean(axis=(1, 2)), a.std(axis=(1, 2))], axis=1))
        return np.concatenate(emb)[:n], [np.concatenate(s)[:n] for s in stats]


def _unit(e: np.ndarray) -> np.ndarray:
    e = np.asarray(e, dtype=np.float64)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


@register_detector("deep-svm")
class DeepSvm(ScaledSVMMixin, SingleImageDetector):
    """Deep-feature S-MAD: face-recognition embeddings and MobileFaceNet texture
    statistics, then a support vector machine.

    Args:
        systems: recognition systems whose embeddings are features (specs as in
            :func:`morphlab.recognition.base.system_from_spec`); may be empty when
            ``layers`` is not.
        layers: MobileFaceNet blocks (keys of :data:`MOBILEFACENET_LAYERS`) whose
            per-channel activation mean and standard deviation are features.
        kernel: ``"rbf"`` or ``"linear"``.
        C: SVM regularisation.
        gamma: RBF width, ``"scale"`` or a number.
        batch_size: crops per call of a network.
        random_state: seed passed to scikit-learn.
    """

    crop_size = 160

    def __init__(self, *, systems: Sequence[str] = ("mobilefacenet",),
                 layers: Sequence[str] = ("block4",), kernel: str = "linear", C: float = 1.0,
                 gamma: str | float = "scale", batch_size: int = 32,
                 random_state: Optional[int] = 0) -> None:
        self.systems = systems
        self.layers = layers
        self.kernel = kernel
        self.C = C
        self.gamma = gamma
        self.batch_size = batch_size
        self.random_state = random_state

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()  # networks do not pickle (joblib workers): reload there
        state.pop("_systems_obj", None)
        state.pop("_taps", None)
        return state

    # -- feature extraction -----------------------------------------------------------
    def _check_spec(self) -> None:
        systems, layers = list(self.systems), list(self.layers)
        if isinstance(self.systems, str) or isinstance(self.layers, str):
            raise ValueError("deep-svm: systems and layers are lists of names, e.g. "
                             "systems=['mobilefacenet'], layers=['block2']")
        if not systems and not layers:
            raise ValueError("deep-svm: no features: give at least one of systems or layers")
        bad = [k for k in layers if k not in MOBILEFACENET_LAYERS]
        if bad:
            raise ValueError(f"deep-svm: unknown layer {bad[0]!r}; valid: {', '.join(MOBILEFACENET_LAYERS)}")
        if len(set(systems)) != len(systems) or len(set(layers)) != len(layers):
            raise ValueError("deep-svm: systems and layers must not repeat a name")

    def _recognition(self) -> dict[str, Any]:
        """``{spec: system}`` for ``systems`` plus MobileFaceNet when layers need it."""
        if getattr(self, "_systems_obj", None) is None:
            from morphlab.recognition.base import system_from_spec

            self._check_spec()
            specs = list(self.systems) + (["mobilefacenet"] if self.layers else [])
            self._systems_obj = {s: system_from_spec(s) for s in dict.fromkeys(specs)}
        return self._systems_obj

    def system_versions(self) -> dict[str, str]:
        """``{spec: cache_key}`` of the systems the features come from."""
        return {s: sys_.cache_key() for s, sys_ in self._recognition().items()}

    def _feature_key(self) -> str:
        return repr((sorted(self.system_versions().items()), list(self.systems), list(self.layers)))

    def _extract(self, crops: np.ndarray) -> np.ndarray:
        """Features of crops without cache, ``(N, D)`` float64."""
        systems = self._recognition()
        face = canonical_face(crops.shape[1])
        parts: dict[str, np.ndarray] = {}
        layer_stats: list[np.ndarray] = []
        if self.layers:
            if getattr(self, "_taps", None) is None:
                self._taps = _MobileFaceNetTaps(systems["mobilefacenet"], self.layers)
            aligned = np.stack([self._taps.system.align(c, face) for c in crops])
            emb, layer_stats = self._taps(aligned)
            if "mobilefacenet" in self.systems:
                parts["mobilefacenet"] = emb
        for spec in self.systems:
            if spec not in parts:
                parts[spec] = np.asarray(systems[spec].embed_batch(list(crops), [face] * len(crops)))
        feats = [_unit(parts[s]) for s in self.systems] + list(layer_stats)
        return np.concatenate(feats, axis=1)

    def features(self, crops: np.ndarray) -> np.ndarray:
        """Features of ``(N, S, S, 3)`` uint8 MAD crops, ``(N, D)`` float64 (cached)."""
        key = self._feature_key()
        hashes = [hashlib.sha1(c.tobytes() + repr(c.shape).encode()).digest() for c in crops]
        todo = [i for i, h in enumerate(hashes) if (key, h) not in _CACHE]
        first: dict[bytes, int] = {}
        for i in todo:
            first.setdefault(hashes[i], i)
        uniq = list(first)
        if uniq:
            from tqdm import tqdm

            bs = max(1, int(self.batch_size))
            idx = np.asarray([first[h] for h in uniq])
            with tqdm(total=len(idx), desc="deep-svm features", unit="crop", delay=3,
                      disable=not progress_enabled(), leave=False) as bar:
                for s in range(0, len(idx), bs):
                    f = self._extract(crops[idx[s:s + bs]])
                    for h, row in zip(uniq[s:s + bs], f):
                        _CACHE[(key, h)] = row
                    bar.update(len(f))
            while len(_CACHE) > CACHE_SIZE:
                _CACHE.popitem(last=False)
        out = []
        for h in hashes:
            _CACHE.move_to_end((key, h))
            out.append(_CACHE[(key, h)])
        return np.stack(out)

    def _features(self, X: np.ndarray) -> np.ndarray:
        return self.features(X)

    # -- contract ---------------------------------------------------------------------
    def _fit(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        scores = super()._fit(X, y)
        self.system_versions_ = self.system_versions()
        return scores

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state, arrays = super()._get_state()
        return {**state, "system_versions": self.system_versions_}, arrays

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        super()._set_state(state, arrays)
        self.system_versions_ = dict(state["system_versions"])
        current = self.system_versions()
        changed = [s for s, v in self.system_versions_.items() if current.get(s) != v]
        if changed:
            s = changed[0]
            raise ValueError(f"this model was trained on features of {self.system_versions_[s]!r} "
                             f"but the installed system gives {current.get(s)!r}; retrain it")
