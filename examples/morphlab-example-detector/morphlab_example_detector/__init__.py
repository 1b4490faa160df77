"""``example-sharpness``: a tiny single-image morphing attack detector (a plug-in template).

Everything a morphlab detector needs: keyword hyper-parameters stored unchanged, the
four hooks (``_fit``, ``_decision_function``, ``_get_state``, ``_set_state``), learned
attributes ending in ``_``, scores where higher means more likely a morph.

* ``_fit(X, y)`` returns the ``(N,)`` training scores (or ``None``, and ``fit`` scores the
  training data with ``_decision_function``); ``fit`` itself returns ``self``.
* ``_get_state()`` returns the pair ``(state, arrays)``: a dict of JSON values, saved in
  ``detector.json``, and ``{name: numeric NumPy array}``, saved in ``arrays.npz``;
  ``_set_state(state, arrays)`` gets that pair back from ``load``.

Being a morphlab detector makes it a scikit-learn estimator too:
``cross_val_score(SharpnessDetector(), X, y, scoring="roc_auc")`` on an ``(N, H, W, 3)``
uint8 array of aligned crops, ``GridSearchCV(SharpnessDetector(), {"shrink": [...]})``.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from morphlab.detectors.base import SingleImageDetector

__version__ = "0.1.0"


def log_laplacian_energy(crops: np.ndarray) -> np.ndarray:
    """``(N, H, W, 3)`` uint8 crops → ``(N,)`` log mean squared 4-neighbour Laplacian of the luma."""
    g = crops.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255.0
    lap = 4 * g[:, 1:-1, 1:-1] - g[:, :-2, 1:-1] - g[:, 2:, 1:-1] - g[:, 1:-1, :-2] - g[:, 1:-1, 2:]
    return np.log((lap * lap).mean(axis=(1, 2)) + 1e-12)


class SharpnessDetector(SingleImageDetector):
    """Morphs are smoother: score = signed, standardised distance of the sharpness feature
    from the midpoint between the two class means.

    Args:
        shrink: added to the pooled standard deviation (regularises tiny training sets).
        random_state: unused (the detector is deterministic); kept by convention.
    """

    name = "example-sharpness"
    crop_size = 128

    def __init__(self, *, shrink: float = 1e-3, random_state: Optional[int] = 0) -> None:
        self.shrink = shrink
        self.random_state = random_state

    def _fit(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        f = log_laplacian_energy(X)
        m_bf, m_morph = f[y == 0].mean(), f[y == 1].mean()
        self.midpoint_ = float((m_bf + m_morph) / 2)
        self.direction_ = 1.0 if m_morph >= m_bf else -1.0
        self.scale_ = float(np.sqrt((f[y == 0].var() + f[y == 1].var()) / 2) + self.shrink)
        return self._score(f)  # the training scores: saves fit() a second pass

    def _score(self, f: np.ndarray) -> np.ndarray:
        return self.direction_ * (f - self.midpoint_) / self.scale_

    def _decision_function(self, X: np.ndarray) -> np.ndarray:
        return self._score(log_laplacian_energy(X))

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        # (JSON state, arrays): three numbers, no arrays
        return {"midpoint": self.midpoint_, "direction": self.direction_, "scale": self.scale_}, {}

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.midpoint_ = float(state["midpoint"])
        self.direction_ = float(state["direction"])
        self.scale_ = float(state["scale"])
