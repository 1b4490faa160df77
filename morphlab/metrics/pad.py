"""Presentation-attack-detection metrics (ISO/IEC 30107-3 names) for morphing attack detectors.

Conventions used by every function here:

* **Score direction**: a higher score means *more likely an attack* (a morph).
* **Tie rule**: a sample whose score is *greater than or equal to* the threshold ``t`` is
  classified as an attack; a score strictly below ``t`` is classified bona fide. Hence

  - ``APCER(t)`` = fraction of attack presentations with score ``< t`` (attacks accepted as
    bona fide), non-decreasing in ``t``;
  - ``BPCER(t)`` = fraction of bona fide presentations with score ``>= t`` (bona fide
    rejected as attacks), non-increasing in ``t``.

* Scores are 1-D arrays of finite floats; ``+inf``/``-inf`` are allowed as scores, NaN is not.
* Rates are floats in ``[0, 1]`` (not percentages).

The operating points of a detector are the thresholds at every distinct score plus ``+inf``
(everything bona fide); thresholds between two consecutive distinct scores give the same
point as the upper one, so this finite set is the whole DET curve.

All functions are pure NumPy: arrays in, numbers/arrays out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

#: The APCER levels of the standard "BPCER at APCER = x" report (1 %, 5 %, 10 %, 20 %).
STANDARD_APCER_LEVELS: tuple[float, ...] = (0.01, 0.05, 0.10, 0.20)


def _scores(x: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError(f"{what}: no scores given (need at least one)")
    if np.isnan(a).any():
        raise ValueError(f"{what}: {int(np.isnan(a).sum())} score(s) are NaN")
    return a


def apcer(attack_scores: Sequence[float] | np.ndarray, threshold: float) -> float:
    """Attack presentation classification error rate at ``threshold``.

    Args:
        attack_scores: ``(N,)`` scores of attack presentations (higher = more likely attack).
        threshold: decision threshold; ``score >= threshold`` is classified as attack.

    Returns:
        The fraction of attack scores strictly below ``threshold``.
    """
    a = _scores(attack_scores, "attack scores")
    return float(np.count_nonzero(a < threshold) / a.size)


def bpcer(bona_fide_scores: Sequence[float] | np.ndarray, threshold: float) -> float:
    """Bona fide presentation classification error rate at ``threshold``.

    Args:
        bona_fide_scores: ``(M,)`` scores of bona fide presentations.
        threshold: decision threshold; ``score >= threshold`` is classified as attack.

    Returns:
        The fraction of bona fide scores greater than or equal to ``threshold``.
    """
    b = _scores(bona_fide_scores, "bona fide scores")
    return float(np.count_nonzero(b >= threshold) / b.size)


def apcer_per_species(
    attack_scores: Sequence[float] | np.ndarray,
    species: Sequence[str],
    threshold: float,
) -> dict[str, float]:
    """APCER of each attack species (e.g. each generator/variant) at one threshold.

    Args:
        attack_scores: ``(N,)`` attack scores (higher = more likely attack).
        species: ``N`` labels naming the species of each attack, e.g. ``"landmark/complete"``.
        threshold: ``score >= threshold`` is classified as attack.

    Returns:
        ``{species: APCER}`` in sorted species order.
    """
    a = _scores(attack_scores, "attack scores")
    sp = np.asarray(list(species), dtype=object)
    if sp.shape != a.shape:
        raise ValueError(f"got {a.size} attack scores but {sp.size} species labels")
    return {str(s): apcer(a[sp == s], threshold) for s in sorted(set(sp.tolist()))}


def max_apcer(per_species: Mapping[str, float]) -> float:
    """The maximum APCER over attack species (ISO/IEC 30107-3 "APCER_AP" of the worst PAI)."""
    if not per_species:
        raise ValueError("no attack species given")
    return float(max(per_species.values()))


@dataclass(frozen=True)
class DetCurve:
    """Every operating point of a detector, ordered by increasing threshold.

    Attributes:
        thresholds: ``(K,)`` the distinct scores in increasing order, then ``+inf``.
        apcer: ``(K,)`` APCER at each threshold (non-decreasing, ends at 1).
        bpcer: ``(K,)`` BPCER at each threshold (non-increasing, ends at 0).
    """

    thresholds: np.ndarray
    apcer: np.ndarray
    bpcer: np.ndarray


def det_curve(
    bona_fide_scores: Sequence[float] | np.ndarray,
    attack_scores: Sequence[float] | np.ndarray,
) -> DetCurve:
    """All (APCER, BPCER) operating points, one per distinct threshold.

    Args:
        bona_fide_scores: ``(M,)`` bona fide scores (higher = more likely attack).
        attack_scores: ``(N,)`` attack scores.

    Returns:
        A :class:`DetCurve`; the first point (lowest threshold, the minimum score) has
        APCER 0, the last (``+inf``) has APCER 1 and BPCER 0. Tie rule: ``score >= t`` is
        an attack. (With ``+inf`` among the scores the last point keeps those as attacks.)
    """
    b = _scores(bona_fide_scores, "bona fide scores")
    a = _scores(attack_scores, "attack scores")
    thr = np.unique(np.concatenate([a, b]))
    if thr[-1] != np.inf:
        thr = np.append(thr, np.inf)
    # attacks strictly below t / bona fide at or above t (counts via sorted search)
    ap = np.searchsorted(np.sort(a), thr, side="left") / a.size
    bp = (b.size - np.searchsorted(np.sort(b), thr, side="left")) / b.size
    return DetCurve(thr, ap.astype(np.float64), bp.astype(np.float64))


def d_eer(
    bona_fide_scores: Sequence[float] | np.ndarray,
    attack_scores: Sequence[float] | np.ndarray,
) -> tuple[float, float]:
    """Detection equal error rate: where APCER equals BPCER.

    The DET curve of finite data is a staircase of operating points; the D-EER is taken
    where the straight segment between the two consecutive operating points that bracket
    ``APCER - BPCER = 0`` crosses the diagonal (exact when an operating point lies on
    it). Score direction: higher = attack; tie rule: ``score >= t`` is an attack.

    Returns:
        ``(eer, threshold)``: the rate in ``[0, 1]`` and the threshold of the bracketing
        operating point with the smaller ``|APCER - BPCER|`` (the upper one on a tie), so
        that a detector set to ``threshold`` runs near the D-EER.
    """
    c = det_curve(bona_fide_scores, attack_scores)
    d = c.apcer - c.bpcer  # non-decreasing, starts <= 0 (APCER 0), ends >= 0 (BPCER 0)
    j = min(int(np.searchsorted(d, 0.0, side="left")), d.size - 1)  # first d >= 0
    if d[j] == 0.0 or j == 0:
        return float(c.apcer[j]), float(c.thresholds[j])
    i = j - 1
    lam = -d[i] / (d[j] - d[i])  # in (0, 1): where the segment i→j crosses d = 0
    eer = c.apcer[i] + lam * (c.apcer[j] - c.apcer[i])
    k = i if abs(d[i]) < abs(d[j]) else j
    return float(eer), float(c.thresholds[k])


def bpcer_at_apcer(
    bona_fide_scores: Sequence[float] | np.ndarray,
    attack_scores: Sequence[float] | np.ndarray,
    apcer_level: float,
) -> tuple[float, float]:
    """BPCER at the operating point where APCER = ``apcer_level`` (e.g. 0.1 for BPCER10).

    With finite data APCER moves in steps of ``1/N``: the operating point used is the one
    with the *largest* threshold whose APCER does not exceed ``apcer_level`` — i.e. the
    lowest BPCER attainable while letting through at most ``floor(apcer_level * N)`` of the
    ``N`` attacks. Score direction: higher = attack; tie rule: ``score >= t`` is an attack.

    Returns:
        ``(bpcer, threshold)``.
    """
    if not 0.0 <= apcer_level <= 1.0:
        raise ValueError(f"apcer_level must be in [0, 1], got {apcer_level}")
    b = _scores(bona_fide_scores, "bona fide scores")
    a = np.sort(_scores(attack_scores, "attack scores"))
    k = math.floor(apcer_level * a.size + 1e-9)  # attacks allowed below the threshold
    t = float(a[k]) if k < a.size else math.inf
    if t == math.inf:
        return 0.0, t
    return bpcer(b, t), t


def bpcer_at_apcer_levels(
    bona_fide_scores: Sequence[float] | np.ndarray,
    attack_scores: Sequence[float] | np.ndarray,
    levels: Sequence[float] = STANDARD_APCER_LEVELS,
) -> dict[str, float]:
    """``{"BPCER@APCER=10%": bpcer, …}`` for each APCER level (see :func:`bpcer_at_apcer`)."""
    return {
        f"BPCER@APCER={_pct(x)}": bpcer_at_apcer(bona_fide_scores, attack_scores, x)[0]
        for x in levels
    }


def _pct(x: float) -> str:
    return f"{x * 100:g}%"


def pad_summary(
    bona_fide_scores: Sequence[float] | np.ndarray,
    attack_scores: Sequence[float] | np.ndarray,
    species: Sequence[str] | None = None,
    threshold: float | None = None,
    levels: Sequence[float] = STANDARD_APCER_LEVELS,
) -> dict:
    """All standard PAD figures for one test set, as a JSON-ready dict.

    Args:
        bona_fide_scores: ``(M,)`` bona fide scores (higher = more likely attack).
        attack_scores: ``(N,)`` attack scores.
        species: optional ``N`` attack-species labels; adds per-species APCER (at
            ``threshold``) and per-species D-EER / BPCER@APCER.
        threshold: the detector's operating threshold (``score >= t`` is an attack); adds
            APCER, BPCER, per-species APCER and max APCER at that point.
        levels: APCER levels for the BPCER@APCER figures.

    Returns:
        ``{"n_bona_fide", "n_attack", "D-EER", "D-EER threshold", "BPCER@APCER=1%", …,
        ["threshold", "APCER", "BPCER", "APCER per species", "max APCER"],
        ["per species": {species: {"n", "D-EER", "BPCER@APCER=…"}}]}``.
    """
    b = _scores(bona_fide_scores, "bona fide scores")
    a = _scores(attack_scores, "attack scores")
    eer, eer_t = d_eer(b, a)
    out: dict = {"n_bona_fide": int(b.size), "n_attack": int(a.size), "D-EER": eer,
                 "D-EER threshold": eer_t}
    out.update(bpcer_at_apcer_levels(b, a, levels))
    sp = None if species is None else np.asarray(list(species), dtype=object)
    if sp is not None and sp.shape != a.shape:
        raise ValueError(f"got {a.size} attack scores but {sp.size} species labels")
    if threshold is not None:
        out["threshold"] = float(threshold)
        out["APCER"] = apcer(a, threshold)
        out["BPCER"] = bpcer(b, threshold)
        if sp is not None:
            per = apcer_per_species(a, sp, threshold)
            out["APCER per species"] = per
            out["max APCER"] = max_apcer(per)
    if sp is not None:
        per_sp = {}
        for s in sorted(set(sp.tolist())):
            a_s = a[sp == s]
            e_s, _ = d_eer(b, a_s)
            per_sp[str(s)] = {"n": int(a_s.size), "D-EER": e_s,
                              **bpcer_at_apcer_levels(b, a_s, levels)}
        out["per species"] = per_sp
    return out
