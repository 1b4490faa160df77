"""``freq-logreg`` (S-MAD): high-frequency residual and Fourier-spectrum statistics →
logistic regression.

Blending two faces averages away sensor noise and fine texture, and warping resamples
the pixels; both leave the high frequencies of a morph weaker, and unevenly so across the
face (a spliced morph keeps the original background). The features of one crop, all on
the luma resized to ``size`` x ``size``:

* ``grid`` x ``grid`` cells: log energy of the residual ``g - GaussianBlur(g, sigma)``;
* the same residual, whole face, per RGB channel (log energy) and its kurtosis;
* the radially averaged log power spectrum of the Hann-windowed luma in ``n_bins``
  frequency bands, centred on its mean (insensitive to overall contrast).

Then standardisation and an L2-regularised, class-balanced logistic regression; the score
is its logit (higher = more likely a morph).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from morphlab.detectors._sklearn import LinearModel, Standardizer
from morphlab.detectors.base import SingleImageDetector, register_detector
from morphlab.detectors.preprocess import resize_crops, to_gray


def _radial_bins(size: int, n_bins: int) -> np.ndarray:
    f = np.fft.fftfreq(size)
    r = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)  # cycles per pixel, 0 .. 0.707
    return np.minimum((r / 0.5 * n_bins).astype(np.int64), n_bins)  # n_bins = corners


def frequency_features(crops: np.ndarray, *, size: int = 128, grid: int = 4,
                       n_bins: int = 24, sigma: float = 1.0) -> np.ndarray:
    """Residual and spectrum statistics of aligned crops.

    Args:
        crops: ``(N, H, W, 3)`` uint8 RGB.
        size, grid, n_bins, sigma: see the module docstring.

    Returns:
        ``(N, grid*grid + 4 + n_bins)`` float64 features.
    """
    import cv2

    x = resize_crops(crops, size).astype(np.float32) / 255.0
    gray = to_gray(resize_crops(crops, size))
    win = np.outer(np.hanning(size), np.hanning(size)).astype(np.float32)
    bins = _radial_bins(size, n_bins)
    counts = np.bincount(bins.ravel(), minlength=n_bins + 1)[:n_bins]
    eps = 1e-8
    out = []
    for g, rgb in zip(gray, x):
        r = g - cv2.GaussianBlur(g, (0, 0), sigma)
        e = r * r
        cells = np.array([[c.mean() for c in np.array_split(row, grid, axis=1)]
                          for row in np.array_split(e, grid, axis=0)])
        rc = rgb - cv2.GaussianBlur(rgb, (0, 0), sigma)
        chan = np.log((rc * rc).mean(axis=(0, 1)) + eps)
        kurt = np.log((e * e).mean() / (e.mean() ** 2 + eps) + eps)
        p = np.abs(np.fft.fft2((g - g.mean()) * win)) ** 2
        radial = np.log(np.bincount(bins.ravel(), p.ravel(), minlength=n_bins + 1)[:n_bins]
                        / np.maximum(counts, 1) + eps)
        out.append(np.concatenate([np.log(cells.ravel() + eps), chan, [kurt],
                                   radial - radial.mean()]))
    return np.asarray(out, dtype=np.float64)


@register_detector("freq-logreg")
class FreqLogReg(SingleImageDetector):
    """Frequency-statistics S-MAD with logistic regression.

    Args:
        size: side the crops are resized to before feature extraction (pixels).
        grid: cells per side for the local residual energies.
        n_bins: radial frequency bands of the power spectrum.
        sigma: Gaussian blur (pixels) defining the high-frequency residual.
        C: inverse L2 regularisation strength of the logistic regression.
        random_state: seed (the solver is deterministic; kept for the contract).
    """

    crop_size = 128

    def __init__(self, *, size: int = 128, grid: int = 4, n_bins: int = 24,
                 sigma: float = 1.0, C: float = 1.0, random_state: Optional[int] = 0) -> None:
        self.size = size
        self.grid = grid
        self.n_bins = n_bins
        self.sigma = sigma
        self.C = C
        self.random_state = random_state

    def _features(self, X: np.ndarray) -> np.ndarray:
        return frequency_features(X, size=int(self.size), grid=int(self.grid),
                                  n_bins=int(self.n_bins), sigma=float(self.sigma))

    def _fit(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        F = self._features(X)
        self.scaler_ = Standardizer.fit(F)
        Z = self.scaler_.transform(F)
        self.model_ = LinearModel.fit_logistic(Z, y, C=float(self.C),
                                               random_state=self.random_state)
        return self.model_.decision(Z)

    def _decision_function(self, X: np.ndarray) -> np.ndarray:
        return self.model_.decision(self.scaler_.transform(self._features(X)))

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"intercept": self.model_.b}, {**self.scaler_.arrays("scaler_"), "coef": self.model_.w}

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.scaler_ = Standardizer.from_arrays(arrays, "scaler_")
        w = np.asarray(arrays["coef"], np.float64)
        if w.shape != self.scaler_.mean.shape:
            raise ValueError(f"coef {w.shape} does not fit scaler_mean {self.scaler_.mean.shape}")
        self.model_ = LinearModel(w, float(state["intercept"]))
