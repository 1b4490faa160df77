"""``embedding-diff`` (D-MAD): difference of face-recognition embeddings → SVM.

The deep-feature differential baseline of the literature (Scherhag et al., 2020): a
morph's embedding lies between its two contributors', so the difference between the
suspected image's embedding and the live probe's embedding is distributed differently
for morphs than for bona fide pairs. Both crops are embedded by one system of the
recognition registry (any; default ``dlib-resnet``), each embedding is L2-normalised,
and ``suspected - live`` goes through standardisation and a class-balanced SVM (RBF by
default: a bona fide difference is *small* in every direction, which no single
hyperplane through the feature space captures). The score is the SVM's signed distance
(higher = more likely a morph).

Crops carry no landmarks: since every MAD crop is aligned to one template, the system is
given :func:`morphlab.detectors.preprocess.canonical_face` — the mean landmark layout of
a crop of that size — and aligns from it as it would from detected landmarks.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from morphlab.detectors._sklearn import KernelSVM, Standardizer
from morphlab.detectors.base import DifferentialDetector, register_detector
from morphlab.detectors.preprocess import canonical_face


@register_detector("embedding-diff")
class EmbeddingDiff(DifferentialDetector):
    """Embedding-difference D-MAD.

    Args:
        system: recognition system spec, ``"dlib-resnet"`` or ``"NAME=MODEL_PATH"`` (e.g.
            ``"arcface-onnx=/models/w600k_r50.onnx"``), see
            :func:`morphlab.recognition.base.system_from_spec`.
        kernel: ``"rbf"`` or ``"linear"``.
        C: SVM regularisation.
        gamma: RBF width, ``"scale"`` or a number.
        batch_size: crops embedded per call of the system.
        random_state: seed passed to scikit-learn.
    """

    crop_size = 160

    def __init__(self, *, system: str = "dlib-resnet", kernel: str = "rbf", C: float = 1.0,
                 gamma: str | float = "scale", batch_size: int = 64,
                 random_state: Optional[int] = 0) -> None:
        self.system = system
        self.kernel = kernel
        self.C = C
        self.gamma = gamma
        self.batch_size = batch_size
        self.random_state = random_state

    def _recognition(self):
        if getattr(self, "_system_obj", None) is None:
            from morphlab.recognition.base import system_from_spec

            self._system_obj = system_from_spec(self.system)
        return self._system_obj

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """L2-normalised embeddings of ``(N, S, S, 3)`` uint8 MAD crops, ``(N, D)`` float64.

        Identical crops (a live probe shared by many pairs) are embedded once.
        """
        import hashlib

        keys = [hashlib.sha1(c.tobytes()).digest() for c in crops]
        first = {}
        for i, k in enumerate(keys):
            first.setdefault(k, i)
        uniq = np.asarray(list(first.values()), dtype=np.int64)
        sys_ = self._recognition()
        face = canonical_face(crops.shape[1])
        bs = max(1, int(self.batch_size))
        parts = []
        for s in range(0, len(uniq), bs):
            batch = list(crops[uniq[s:s + bs]])
            parts.append(np.asarray(sys_.embed_batch(batch, [face] * len(batch)), dtype=np.float64))
        e = np.concatenate(parts)
        e /= np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        pos = {k: j for j, k in enumerate(first)}
        return e[[pos[k] for k in keys]]

    def _features(self, X: np.ndarray) -> np.ndarray:
        n = len(X)
        e = self.embed(X.reshape((2 * n,) + X.shape[2:])).reshape(n, 2, -1)
        return e[:, 0] - e[:, 1]

    def _fit(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        F = self._features(X)
        self.scaler_ = Standardizer.fit(F)
        Z = self.scaler_.transform(F)
        self.svm_ = KernelSVM.fit(Z, y, C=float(self.C), kernel=self.kernel, gamma=self.gamma,
                                  random_state=self.random_state)
        self.system_version_ = self._recognition().cache_key()
        return self.svm_.decision(Z)

    def _decision_function(self, X: np.ndarray) -> np.ndarray:
        return self.svm_.decision(self.scaler_.transform(self._features(X)))

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return ({**self.svm_.state(), "system_version": self.system_version_},
                {**self.scaler_.arrays("scaler_"), **self.svm_.arrays("svm_")})

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.scaler_ = Standardizer.from_arrays(arrays, "scaler_")
        self.svm_ = KernelSVM.restore(state, arrays, "svm_")
        self.system_version_ = state.get("system_version", "")
        current = self._recognition().cache_key()
        if self.system_version_ and current != self.system_version_:
            raise ValueError(
                f"this model was trained on embeddings of {self.system_version_!r} but the "
                f"installed system gives {current!r}; retrain it"
            )
