"""Hand-crafted image features shared by recognition and detection.

One piece of code per idea: the ``lbph`` recognition system and the LBP-based morphing
attack detectors both use :func:`lbp_histograms`.
"""

from __future__ import annotations

import numpy as np


def lbp_n_bins(P: int) -> int:
    """Number of non-rotation-invariant uniform LBP codes for ``P`` neighbours (59 for P=8)."""
    return P * (P - 1) + 3


def lbp_histograms(
    gray: np.ndarray,
    grid: tuple[int, int] = (8, 8),
    P: int = 8,
    R: float = 1,
) -> np.ndarray:
    """Uniform local binary pattern histograms over a grid of cells (Ahonen et al., 2006).

    Each pixel gets the non-rotation-invariant uniform code ``LBP^{u2}_{P,R}``
    (``skimage.feature.local_binary_pattern(method="nri_uniform")``: ``P(P-1)+3`` codes, 59
    for P=8, all non-uniform patterns in one bin); the image is split into
    ``grid = (rows, cols)`` cells of (almost) equal size and each cell's code histogram is
    normalised to sum to 1.

    Args:
        gray: ``(H, W)`` grey image (any real dtype; uint8 typical). H, W ≥ grid.
        grid: number of cells ``(rows, cols)``.
        P: number of circular neighbours.
        R: radius in pixels.

    Returns:
        ``(rows * cols * (P(P-1)+3),)`` float32, cell histograms concatenated row-major;
        each cell sums to 1, so the whole vector sums to ``rows * cols``.
    """
    from skimage.feature import local_binary_pattern

    gray = np.asarray(gray)
    if gray.ndim != 2:
        raise ValueError(f"lbp_histograms expects a 2-D grey image, got shape {gray.shape}")
    rows, cols = (int(g) for g in grid)
    h, w = gray.shape
    if rows < 1 or cols < 1 or h < rows or w < cols:
        raise ValueError(f"lbp_histograms: grid {grid} does not fit an image of {w}x{h}")
    n_bins = lbp_n_bins(P)
    if not np.issubdtype(gray.dtype, np.integer):
        gray = gray.astype(np.float64)
    codes = local_binary_pattern(gray, P, R, method="nri_uniform")
    codes = codes.astype(np.int64)
    # cell index of every pixel, then one bincount for all cells at once
    ry = np.minimum(np.arange(h) * rows // h, rows - 1)
    cx = np.minimum(np.arange(w) * cols // w, cols - 1)
    cell = ry[:, None] * cols + cx[None, :]
    hist = np.bincount((cell * n_bins + codes).ravel(), minlength=rows * cols * n_bins)
    hist = hist.reshape(rows * cols, n_bins).astype(np.float64)
    hist /= np.maximum(hist.sum(axis=1, keepdims=True), 1.0)
    return hist.ravel().astype(np.float32)


def chi2_distances(a: np.ndarray, b: np.ndarray, *, chunk: int = 64) -> np.ndarray:
    """All-pairs chi-square distances ``sum_k (a_k - b_k)^2 / (a_k + b_k)`` (0/0 counts 0).

    Args:
        a: ``(N, D)`` non-negative histograms.
        b: ``(M, D)`` non-negative histograms.
        chunk: rows of ``a`` processed at once (memory ``chunk * M * D`` floats).

    Returns:
        ``(N, M)`` float64.
    """
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"chi2_distances: dimensions differ ({a.shape[1]} vs {b.shape[1]})")
    out = np.empty((len(a), len(b)))
    for i in range(0, len(a), chunk):
        x = a[i : i + chunk, None, :]
        num = (x - b[None]) ** 2
        den = x + b[None]
        out[i : i + chunk] = np.divide(num, den, out=np.zeros_like(num), where=den > 0).sum(-1)
    return out
