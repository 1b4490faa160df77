"""Verification thresholds of face recognition systems: calibrated at a target FMR, or given.

Conventions used by every function here:

* **Score direction**: scores are *similarities* — higher means more likely the same person.
* **Tie rule**: a comparison is **accepted** (a match) when ``score >= threshold``; a score
  strictly below the threshold is rejected. Hence

  - ``FMR(t)``  = fraction of impostor (different-person) scores ``>= t``;
  - ``FNMR(t)`` = fraction of genuine (same-person) scores ``< t``.

* Scores are 1-D arrays of floats (NaN not allowed); rates are floats in ``[0, 1]``.

Calibration (:func:`threshold_at_fmr`) picks the **smallest threshold whose FMR does not
exceed the target** on the bona fide impostor comparisons given: with ``N`` impostor
scores, at most ``floor(target * N)`` may be accepted, so the threshold is placed just
above (``numpy.nextafter``) the ``(floor(target * N) + 1)``-th highest impostor score.
Tied impostor scores are never split, so the achieved FMR can be below the target. An
FMR of 0.1% is only meaningful with at least ~10 / 0.001 = 10,000 impostor comparisons;
:func:`calibrate` warns (and records ``too_few_impostors``) below ``10 / target``.

The default target FMR of 0.1% is the operating point recommended by Frontex for
automated border control and used by the MAP papers (Ferrara et al., IWBF 2022).
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import numpy as np

# one score validator for all metrics (1-D float64, non-empty, no NaN)
from morphlab.metrics.pad import _scores

log = logging.getLogger(__name__)

#: The operating point of the Frontex best-practice guidelines for ABC systems.
DEFAULT_TARGET_FMR = 1e-3


def fmr(impostor_scores: Sequence[float] | np.ndarray, threshold: float) -> float:
    """False match rate: the fraction of impostor scores ``>= threshold``."""
    s = _scores(impostor_scores, "impostor scores")
    return float(np.count_nonzero(s >= threshold) / s.size)


def fnmr(genuine_scores: Sequence[float] | np.ndarray, threshold: float) -> float:
    """False non-match rate: the fraction of genuine scores ``< threshold``."""
    s = _scores(genuine_scores, "genuine scores")
    return float(np.count_nonzero(s < threshold) / s.size)


def threshold_at_fmr(impostor_scores: Sequence[float] | np.ndarray, target_fmr: float) -> float:
    """The smallest threshold with ``FMR <= target_fmr`` on these impostor scores.

    Args:
        impostor_scores: ``(N,)`` similarity scores of different-person comparisons.
        target_fmr: in ``[0, 1]``.

    Returns:
        A threshold ``t`` (accept ``score >= t``) just above the
        ``(floor(target_fmr * N) + 1)``-th highest impostor score; ``-inf`` when
        ``floor(target_fmr * N) >= N`` (every comparison may be accepted).
    """
    s = _scores(impostor_scores, "impostor scores")
    if not 0.0 <= target_fmr <= 1.0:
        raise ValueError(f"target_fmr must be in [0, 1], got {target_fmr}")
    allowed = math.floor(target_fmr * s.size + 1e-9)  # guard 0.001 * 1000 = 0.9999…
    if allowed >= s.size:
        return float("-inf")
    desc = np.sort(s)[::-1]
    return float(np.nextafter(desc[allowed], np.inf))


@dataclass(frozen=True)
class OperatingPoint:
    """A system's threshold and its error rates on the calibration comparisons.

    Attributes:
        threshold: accept when ``similarity >= threshold``.
        policy: ``"fmr"`` (calibrated at ``target_fmr``) or ``"fixed"`` (given).
        target_fmr: the target of a calibrated threshold, else ``None``.
        fmr: achieved FMR on the impostor scores (``None`` without impostor scores).
        fnmr: FNMR on the genuine scores (``None`` without genuine scores).
        n_genuine: number of genuine comparisons.
        n_impostor: number of impostor comparisons.
        too_few_impostors: fewer than ``10 / target_fmr`` impostor comparisons.
    """

    threshold: float
    policy: str
    target_fmr: Optional[float]
    fmr: Optional[float]
    fnmr: Optional[float]
    n_genuine: int
    n_impostor: int
    too_few_impostors: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def calibrate(
    genuine_scores: Optional[Sequence[float] | np.ndarray],
    impostor_scores: Sequence[float] | np.ndarray,
    target_fmr: float = DEFAULT_TARGET_FMR,
    *,
    what: str = "system",
) -> OperatingPoint:
    """Threshold at ``target_fmr`` from bona fide comparisons, with its FMR and FNMR.

    Args:
        genuine_scores: same-person similarity scores (may be ``None`` or empty: FNMR
            is then not reported).
        impostor_scores: different-person similarity scores (required).
        target_fmr: target false match rate, e.g. ``0.001``.
        what: name used in the messages (the system's name).

    Raises:
        ValueError: no impostor scores.

    Warns:
        UserWarning when there are fewer than ``10 / target_fmr`` impostor comparisons.
    """
    imp = np.asarray(impostor_scores if impostor_scores is not None else [], dtype=np.float64).ravel()
    if imp.size == 0:
        raise ValueError(
            f"{what}: the calibration set has no impostor comparisons (pairs of images of "
            "different subjects); give bona fide images of at least two subjects, or a fixed "
            "threshold"
        )
    thr = threshold_at_fmr(imp, target_fmr)
    need = math.ceil(10.0 / target_fmr) if target_fmr > 0 else math.inf
    few = imp.size < need
    if few:
        msg = (f"{what}: only {imp.size} impostor comparisons to calibrate at FMR "
               f"{target_fmr:g}; about {need} are needed for a reliable threshold")
        warnings.warn(msg, UserWarning, stacklevel=2)
    gen = _optional(genuine_scores)
    return OperatingPoint(
        threshold=thr,
        policy="fmr",
        target_fmr=float(target_fmr),
        fmr=fmr(imp, thr),
        fnmr=fnmr(gen, thr) if gen.size else None,
        n_genuine=int(gen.size),
        n_impostor=int(imp.size),
        too_few_impostors=bool(few),
    )


def fixed(
    threshold: float,
    genuine_scores: Optional[Sequence[float] | np.ndarray] = None,
    impostor_scores: Optional[Sequence[float] | np.ndarray] = None,
) -> OperatingPoint:
    """A given threshold, with its FMR/FNMR on whatever bona fide scores are available."""
    gen, imp = _optional(genuine_scores), _optional(impostor_scores)
    return OperatingPoint(
        threshold=float(threshold),
        policy="fixed",
        target_fmr=None,
        fmr=fmr(imp, threshold) if imp.size else None,
        fnmr=fnmr(gen, threshold) if gen.size else None,
        n_genuine=int(gen.size),
        n_impostor=int(imp.size),
    )


def _optional(x) -> np.ndarray:
    if x is None:
        return np.zeros(0)
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size:
        _scores(a, "scores")
    return a
