"""``lbp-svm`` (S-MAD): uniform LBP histograms over a grid of the aligned face → SVM.

The classic texture baseline of morphing attack detection (Raghavendra et al., 2016;
Scherhag et al., 2019): blending and resampling change the micro-texture of the skin,
which local binary patterns capture. Per crop: the luma resized to ``size`` x ``size``,
uniform ``LBP^{u2}_{P,R}`` histograms in ``grid`` cells for each radius in ``radii``
(:func:`morphlab.features.lbp_histograms`), square-rooted (Hellinger map),
standardised, then a class-balanced SVM (RBF or linear kernel). The score is the SVM's
signed distance (higher = more likely a morph).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from morphlab.detectors._sklearn import ScaledSVMMixin
from morphlab.detectors.base import SingleImageDetector, register_detector
from morphlab.detectors.preprocess import resize_crops, to_gray


def lbp_features(crops: np.ndarray, *, size: int = 128, grid: Sequence[int] = (4, 4),
                 P: int = 8, radii: Sequence[float] = (1, 2)) -> np.ndarray:
    """LBP histogram features of aligned crops.

    Args:
        crops: ``(N, H, W, 3)`` uint8 RGB.
        size: side the luma is resized to.
        grid: ``(rows, cols)`` cells.
        P: circular neighbours of the LBP operator.
        radii: LBP radii; histograms of all radii are concatenated.

    Returns:
        ``(N, len(radii) * rows * cols * (P(P-1)+3))`` float64, square-rooted histograms.
    """
    from morphlab.features import lbp_histograms

    gray = np.rint(to_gray(resize_crops(crops, size)) * 255.0).astype(np.uint8)
    rows = [np.concatenate([lbp_histograms(g, tuple(grid), int(P), float(r)) for r in radii])
            for g in gray]
    return np.sqrt(np.asarray(rows, dtype=np.float64))


@register_detector("lbp-svm")
class LbpSvm(ScaledSVMMixin, SingleImageDetector):
    """Local-binary-pattern S-MAD with a support vector machine.

    Args:
        size: side the crops are resized to (pixels).
        grid: ``(rows, cols)`` cells of the LBP histograms.
        P: LBP neighbours.
        radii: LBP radii (pixels), one histogram set each.
        kernel: ``"rbf"`` or ``"linear"``.
        C: SVM regularisation.
        gamma: RBF width, ``"scale"`` (scikit-learn's default) or a number.
        random_state: seed passed to scikit-learn.
    """

    crop_size = 128

    def __init__(self, *, size: int = 128, grid: Sequence[int] = (4, 4), P: int = 8,
                 radii: Sequence[float] = (1, 2), kernel: str = "rbf", C: float = 1.0,
                 gamma: str | float = "scale", random_state: Optional[int] = 0) -> None:
        self.size = size
        self.grid = grid
        self.P = P
        self.radii = radii
        self.kernel = kernel
        self.C = C
        self.gamma = gamma
        self.random_state = random_state

    def _features(self, X: np.ndarray) -> np.ndarray:
        return lbp_features(X, size=int(self.size), grid=self.grid, P=int(self.P), radii=self.radii)
