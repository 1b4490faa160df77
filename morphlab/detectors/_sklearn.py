"""scikit-learn classifiers trained once, then kept as plain arrays.

The feature-based detectors train with scikit-learn and store what the decision function
needs — scaler statistics, support vectors and dual coefficients, or a weight vector — as
NumPy arrays, so a model folder never holds a pickle. Scoring is re-implemented here in
NumPy and checked against scikit-learn in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


def import_sklearn():
    try:
        import sklearn
    except ImportError:
        raise ImportError(
            "this detector needs scikit-learn: pip install 'morphlab[detect]'"
        ) from None
    return sklearn


@dataclass
class Standardizer:
    """Zero-mean, unit-variance feature scaling (features of zero variance are kept as 0)."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray) -> "Standardizer":
        mean = X.mean(axis=0)
        std = X.std(axis=0)
        return cls(mean, np.where(std > 1e-12, std, 1.0))

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean) / self.scale

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}mean": self.mean, f"{prefix}scale": self.scale}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> "Standardizer":
        mean = np.asarray(arrays[f"{prefix}mean"], dtype=np.float64)
        scale = np.asarray(arrays[f"{prefix}scale"], dtype=np.float64)
        if mean.ndim != 1 or mean.shape != scale.shape or not (scale > 0).all():
            raise ValueError(f"{prefix}mean {mean.shape} and {prefix}scale {scale.shape} must be "
                             "one vector each, of one length, with positive scales")
        return cls(mean, scale)


@dataclass
class KernelSVM:
    """A binary SVM (linear or RBF kernel) reduced to its support vectors.

    ``decision(x) = sum_i dual_i * k(sv_i, x) + intercept``; positive means class 1
    (morph), scikit-learn's sign convention for ``classes_ = [0, 1]``.
    """

    kernel: str
    gamma: float
    support_vectors: np.ndarray  # (S, D) float64
    dual_coef: np.ndarray  # (S,) float64
    intercept: float

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, *, C: float, kernel: str,
            gamma: str | float, random_state: Optional[int]) -> "KernelSVM":
        import_sklearn()
        from sklearn.svm import SVC

        if kernel not in ("linear", "rbf"):
            raise ValueError(f"kernel must be 'linear' or 'rbf', got {kernel!r}")
        svc = SVC(C=C, kernel=kernel, gamma=gamma, class_weight="balanced",
                  random_state=random_state)
        svc.fit(X, y)
        if list(svc.classes_) != [0, 1]:  # check_labels guarantees both classes
            raise RuntimeError(f"unexpected SVM classes {svc.classes_}")
        return cls(kernel, float(getattr(svc, "_gamma", 0.0)),
                   np.asarray(svc.support_vectors_, dtype=np.float64),
                   np.asarray(svc.dual_coef_, dtype=np.float64)[0],
                   float(svc.intercept_[0]))

    def decision(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        sv = self.support_vectors
        if self.kernel == "linear":
            return X @ (self.dual_coef @ sv) + self.intercept
        d2 = (X * X).sum(1)[:, None] + (sv * sv).sum(1)[None, :] - 2.0 * X @ sv.T
        return np.exp(-self.gamma * np.maximum(d2, 0.0)) @ self.dual_coef + self.intercept

    def state(self) -> dict:
        return {"kernel": self.kernel, "gamma": self.gamma, "intercept": self.intercept}

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}support_vectors": self.support_vectors, f"{prefix}dual_coef": self.dual_coef}

    @classmethod
    def restore(cls, state: dict, arrays: dict[str, np.ndarray], prefix: str,
                n_features: Optional[int] = None) -> "KernelSVM":
        """The SVM of :meth:`state` + :meth:`arrays`; ``ValueError`` when they do not fit."""
        if state["kernel"] not in ("linear", "rbf"):
            raise ValueError(f"kernel must be 'linear' or 'rbf', got {state['kernel']!r}")
        sv = np.asarray(arrays[f"{prefix}support_vectors"], dtype=np.float64)
        dual = np.asarray(arrays[f"{prefix}dual_coef"], dtype=np.float64)
        if sv.ndim != 2 or dual.shape != (len(sv),) or (n_features is not None and sv.shape[1] != n_features):
            raise ValueError(f"{prefix}support_vectors {sv.shape} and {prefix}dual_coef {dual.shape} "
                             f"do not fit together{'' if n_features is None else f' and {n_features} features'}")
        return cls(state["kernel"], float(state["gamma"]), sv, dual, float(state["intercept"]))


@dataclass
class LinearModel:
    """``decision(x) = x @ w + b``; positive means class 1 (morph)."""

    w: np.ndarray  # (D,) float64
    b: float

    @classmethod
    def fit_logistic(cls, X: np.ndarray, y: np.ndarray, *, C: float,
                     random_state: Optional[int]) -> "LinearModel":
        import_sklearn()
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=C, class_weight="balanced", max_iter=5000,
                                random_state=random_state)
        lr.fit(X, y)
        return cls(np.asarray(lr.coef_[0], dtype=np.float64), float(lr.intercept_[0]))

    def decision(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=np.float64) @ self.w + self.b


class ScaledSVMMixin:
    """The detector hooks of "features → standardise → :class:`KernelSVM`" detectors.

    The class using it defines ``_features(X) -> (N, D)`` and the hyper-parameters
    ``kernel``, ``C``, ``gamma`` and ``random_state``; it learns ``scaler_`` and ``svm_``.
    """

    def _fit(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        F = self._features(X)
        self.scaler_ = Standardizer.fit(F)
        Z = self.scaler_.transform(F)
        self.svm_ = KernelSVM.fit(Z, y, C=float(self.C), kernel=self.kernel, gamma=self.gamma,
                                  random_state=self.random_state)
        return self.svm_.decision(Z)

    def _decision_function(self, X: np.ndarray) -> np.ndarray:
        return self.svm_.decision(self.scaler_.transform(self._features(X)))

    def _get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        return self.svm_.state(), {**self.scaler_.arrays("scaler_"), **self.svm_.arrays("svm_")}

    def _set_state(self, state: dict, arrays: dict[str, np.ndarray]) -> None:
        self.scaler_ = Standardizer.from_arrays(arrays, "scaler_")
        self.svm_ = KernelSVM.restore(state, arrays, "svm_", n_features=len(self.scaler_.mean))
