"""``lbph``: a classical local-binary-pattern histogram matcher (Ahonen, Hadid, Pietikäinen, 2006).

Needs no weights. Weak compared with deep systems, but a genuinely different algorithm,
so a multi-system MAP runs out of the box.

Pipeline: five-point similarity alignment onto insightface's ArcFace template at
``size`` pixels (:func:`morphlab.recognition.base.five_point_crop`; the image is first
area-downscaled so the warp never shrinks by more than 2×, avoiding aliasing), grey
conversion, then :func:`morphlab.features.lbp_histograms` (uniform ``LBP^{u2}_{8,1}``
histograms over an 8×8 grid, each cell normalised to sum 1).

Score: the chi-square distance ``chi2 = sum (a - b)^2 / (a + b)`` of two embeddings lies
in ``[0, 2 * cells]`` (cells sum to 1 each); **similarity = 1 − chi2 / (2 * cells)**, in
``[0, 1]``, higher = more similar. No published threshold: calibrate one at a target FMR.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from morphlab.face.base import Face
from morphlab.features import chi2_distances, lbp_histograms
from morphlab.recognition.base import RECOGNITION, RecognitionSystem, five_point_crop

log = logging.getLogger(__name__)


@RECOGNITION.register("lbph")
class LBPH(RecognitionSystem):
    """Uniform-LBP histograms + chi-square similarity.

    Args:
        size: side of the aligned square crop in pixels.
        grid: cells ``(rows, cols)`` of the histogram grid.
        P: LBP neighbours.
        R: LBP radius in pixels.
    """

    name = "lbph"
    score_description = "1 - chi-square distance / (2 * cells) of uniform-LBP cell histograms"

    def __init__(self, *, size: int = 128, grid: tuple[int, int] = (8, 8), P: int = 8,
                 R: float = 1) -> None:
        self.size = int(size)
        self.grid = (int(grid[0]), int(grid[1]))
        self.P = int(P)
        self.R = float(R)
        if self.size < 16:
            raise ValueError(f"lbph: size must be at least 16 pixels, got {size}")
        self.version = f"1-s{self.size}-g{self.grid[0]}x{self.grid[1]}-P{self.P}-R{self.R:g}"

    @property
    def cells(self) -> int:
        return self.grid[0] * self.grid[1]

    def align(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The ``(size, size)`` uint8 grey crop of ``face``, aligned on its five points."""
        crop = five_point_crop(image, face, self.size, border="replicate")
        return cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        return lbp_histograms(self.align(image, face), grid=self.grid, P=self.P, R=self.R)

    def similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``1 - chi2 / (2 * cells)`` for all pairs, ``(N, M)`` float64 in [0, 1]."""
        return 1.0 - chi2_distances(a, b) / (2.0 * self.cells)
