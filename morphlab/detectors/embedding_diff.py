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

from morphlab.detectors._sklearn import ScaledSVMMixin
from morphlab.detectors.base import DifferentialDetector, register_detector
from morphlab.detectors.preprocess import canonical_face


@register_detector("embedding-diff")
class EmbeddingDiff(ScaledSVMMixin, DifferentialDetector):
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
        """The recognition system of ``self.system``, built once per spec (a later
        ``set_params(system=...)`` builds the new one)."""
        cached = getattr(self, "_system_obj", None)
        if cached is None or cached[0] != self.system:
            from morphlab.recognition.base import system_from_spec

            self._system_obj = (self.system, system_from_spec(self.system))
        return self._system_obj[1]

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
        scores = super()._fit(X, y)
        self.system_version_ = self._recognition().cache_key()
        return scores

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state, arrays = super()._get_state()
        return {**state, "system_version": self.system_version_}, arrays

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        super()._set_state(state, arrays)
        self.system_version_ = state.get("system_version", "")
        current = self._recognition().cache_key()
        if self.system_version_ and current != self.system_version_:
            raise ValueError(
                f"this model was trained on embeddings of {self.system_version_!r} but the "
                f"installed system gives {current!r}; retrain it"
            )
