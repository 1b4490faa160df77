"""Presentation-attack-detection metrics (ISO/IEC 30107-3 names) for morphing attack detectors.

Conventions used by every function here:

* **Score direction**: a higher score means *more likely an attack* (a morph).
* **Tie rule**: a sample whose score is *greater than or equal to* the threshold ``t`` is
  classified as an attack; a score strictly below ``t`` is classified bona fide. Hence

  - ``APCER(t)`` = fraction of attack presentations with score ``< t`` (attacks accepted as
    bona fide), non-decreasing in ``t``;
  - ``BPCER(t)`` = fraction of bona fide presentations with score ``>= t`` (bona fide
    rejected as attacks), non-increasing in ``t``.

* Scores are 1-D arrays of floats; ``+inf``/``-inf`` are allowed as scores (the ends of the
  score scale), NaN is not.
* Rates are floats in ``[0, 1]`` (not percentages).

The operating points of a detector are the thresholds at every distinct score plus the end
point "everything bona fide" (APCER 1, BPCER 0) at ``+inf``; thresholds between two
consecutive distinct scores give the same point as the upper one, so this finite set is the
whole DET curve. With ``+inf`` among the scores no threshold classifies those scores bona
fide; the end point is then the limit of the curve (as in a ranking of the scores), still
reported at threshold ``+inf``. This makes D-EER and the operating points equal to those of
any finite scores in the same order.

Figures (ISO/IEC 30107-3 and NIST FATE MORPH conventions):

* **APCER per species** and **max APCER** — ISO/IEC 30107-3 reports the APCER of every
  attack species (PAI species: here a generator/variant) and its maximum, APCER_AP.
* **BPCER@APCER** (:func:`bpcer_at_apcer`) — BPCER at the operating point where APCER =
  a level (``BPCER10`` at 10 %). The **headline** is computed at the *maximum-over-species*
  APCER (the threshold must keep *every* species at or below the level: the ISO figure);
  the APCER pooled over all attacks gives the *pooled* figure, labelled as such.
* **APCER@BPCER** (:func:`apcer_at_bpcer`) — FATE MORPH's headline: APCER at BPCER = 10 %
  and 1 % (``STANDARD_BPCER_LEVELS``), plus any level the caller adds.
* **D-EER** (:func:`d_eer`) — see :data:`D_EER_RULE`.
* **Sample size**: a level ``x`` cannot be resolved with fewer than ``1 / x`` presentations
  of the class it constrains (attacks for BPCER@APCER, bona fide for APCER@BPCER): the
  figure is then taken at rate 0; :func:`resolution_note` says so and
  :func:`pad_summary` lists such notes.
* Every rate of :func:`pad_summary` comes with its count ``k``, sample size ``n`` and a
  Wilson 95 % interval (:func:`morphlab.metrics.intervals.rate`) under ``"intervals"``.
  The interval is that of the error count at the operating threshold; it does not include
  the variation of a threshold chosen on the same scores.

All functions are pure NumPy: arrays in, numbers/arrays out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np

from morphlab.metrics.intervals import Rate, rate

#: The APCER levels of the standard "BPCER at APCER = x" report (1 %, 5 %, 10 %, 20 %).
STANDARD_APCER_LEVELS: tuple[float, ...] = (0.01, 0.05, 0.10, 0.20)
#: The BPCER levels of FATE MORPH's "APCER at BPCER = x" headline (10 %, 1 %).
STANDARD_BPCER_LEVELS: tuple[float, ...] = (0.10, 0.01)
#: How :func:`d_eer` interpolates, in words a report can print.
D_EER_RULE = (
    "D-EER = the rate where the straight segment between the two consecutive DET operating "
    "points that bracket APCER = BPCER crosses APCER = BPCER (APCER = BPCER at an operating "
    "point gives that value exactly); its threshold is that of the bracketing operating point "
    "with the smaller |APCER - BPCER| (the upper one on a tie). Tie rule: score >= threshold "
    "is an attack."
)


def _scores(x: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError(f"{what}: no scores given (need at least one)")
    if np.isnan(a).any():
        raise ValueError(f"{what}: {int(np.isnan(a).sum())} score(s) are NaN")
    return a


def _level(x: float, what: str) -> float:
    if not 0.0 <= x <= 1.0:  # also false for NaN
        raise ValueError(f"{what} must be in [0, 1], got {x}")
    return float(x)


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
        threshold: ``score >= threshold`` is classified as attack (tie rule).

    Returns:
        ``{species: APCER}`` in sorted species order.
    """
    a = _scores(attack_scores, "attack scores")
    sp = _species(species, a.size)
    return {str(s): apcer(a[sp == s], threshold) for s in sorted(set(sp.tolist()))}


def _species(species: Sequence[str], n: int) -> np.ndarray:
    sp = np.asarray([str(s) for s in species], dtype=object)
    if sp.shape != (n,):
        raise ValueError(f"got {n} attack scores but {sp.size} species labels")
    return sp


def max_apcer(per_species: Mapping[str, float]) -> float:
    """The maximum APCER over attack species (ISO/IEC 30107-3 "APCER_AP" of the worst PAI).

    Same score direction and tie rule as :func:`apcer` (the values are its output)."""
    if not per_species:
        raise ValueError("no attack species given")
    return float(max(per_species.values()))


@dataclass(frozen=True)
class DetCurve:
    """Every operating point of a detector, ordered by increasing threshold.

    Attributes:
        thresholds: ``(K,)`` the distinct scores in increasing order, then ``+inf`` (the
            end point "everything bona fide"; with ``+inf`` scores ``+inf`` appears twice,
            see the module docstring).
        apcer: ``(K,)`` APCER at each threshold (non-decreasing, ends at 1).
        bpcer: ``(K,)`` BPCER at each threshold (non-increasing, ends at 0).
        n_attack, n_bona_fide: the sample sizes (``apcer * n_attack`` are the counts).
    """

    thresholds: np.ndarray
    apcer: np.ndarray
    bpcer: np.ndarray
    n_attack: int = 0
    n_bona_fide: int = 0

    def counts(self, i: int) -> tuple[int, int]:
        """``(attacks classified bona fide, bona fide classified attack)`` at point ``i``."""
        return (int(round(self.apcer[i] * self.n_attack)),
                int(round(self.bpcer[i] * self.n_bona_fide)))


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
        APCER 0 and BPCER 1, the last (``+inf``) APCER 1 and BPCER 0. Tie rule:
        ``score >= t`` is an attack. With ``+inf`` among the scores, the point before the
        last has threshold ``+inf`` too and classifies those scores as attacks.
    """
    b = _scores(bona_fide_scores, "bona fide scores")
    a = _scores(attack_scores, "attack scores")
    thr = np.unique(np.concatenate([a, b]))
    # attacks strictly below t / bona fide at or above t (counts via sorted search)
    ka = np.searchsorted(np.sort(a), thr, side="left")
    kb = b.size - np.searchsorted(np.sort(b), thr, side="left")
    thr = np.append(thr, np.inf)
    ka = np.append(ka, a.size)
    kb = np.append(kb, 0)
    return DetCurve(thr, (ka / a.size).astype(np.float64), (kb / b.size).astype(np.float64),
                    int(a.size), int(b.size))


def _d_eer_index(c: DetCurve) -> tuple[float, int]:
    d = c.apcer - c.bpcer  # non-decreasing, starts at -1 (APCER 0, BPCER 1), ends at 1
    j = int(np.searchsorted(d, 0.0, side="left"))  # first d >= 0 (exists: d[-1] = 1)
    if d[j] == 0.0 or j == 0:
        return float(c.apcer[j]), j
    i = j - 1
    lam = -d[i] / (d[j] - d[i])  # in (0, 1): where the segment i→j crosses d = 0
    eer = c.apcer[i] + lam * (c.apcer[j] - c.apcer[i])
    k = i if abs(d[i]) < abs(d[j]) else j
    return float(eer), k


def d_eer(
    bona_fide_scores: Sequence[float] | np.ndarray,
    attack_scores: Sequence[float] | np.ndarray,
) -> tuple[float, float]:
    """Detection equal error rate: where APCER equals BPCER.

    Interpolation rule (:data:`D_EER_RULE`): the DET curve of finite data is a staircase of
    operating points (:func:`det_curve`); the D-EER is the rate where the straight segment
    between the two consecutive operating points that bracket ``APCER - BPCER = 0`` crosses
    the diagonal APCER = BPCER — exact when an operating point lies on it. On a vertical
    or horizontal step this is the APCER (resp. BPCER) shared by both points; otherwise it
    is neither point's APCER nor BPCER, nor in general their midpoint. Score direction:
    higher = attack; tie rule: ``score >= t`` is an attack; ``±inf`` scores are the ends
    of the scale.

    Returns:
        ``(eer, threshold)``: the rate in ``[0, 1]`` and the threshold of the bracketing
        operating point with the smaller ``|APCER - BPCER|`` (the upper one on a tie), so
        that a detector set to ``threshold`` runs near the D-EER.
    """
    c = det_curve(bona_fide_scores, attack_scores)
    eer, k = _d_eer_index(c)
    return eer, float(c.thresholds[k])


@dataclass(frozen=True)
class DeerPoint:
    """The D-EER with its operating point.

    Attributes:
        eer: the D-EER (see :data:`D_EER_RULE`).
        threshold: the operating point's threshold (``score >= threshold`` is an attack).
        apcer, bpcer: the APCER and BPCER at that operating point, with counts and Wilson
            95 % intervals (:class:`~morphlab.metrics.intervals.Rate`).
        rule: :data:`D_EER_RULE`.
    """

    eer: float
    threshold: float
    apcer: Rate
    bpcer: Rate
    rule: str = D_EER_RULE


def d_eer_point(
    bona_fide_scores: Sequence[float] | np.ndarray,
    attack_scores: Sequence[float] | np.ndarray,
) -> DeerPoint:
    """:func:`d_eer` with the APCER and BPCER (counts, intervals) of its operating point."""
    c = det_curve(bona_fide_scores, attack_scores)
    eer, k = _d_eer_index(c)
    ka, kb = c.counts(k)
    return DeerPoint(eer, float(c.thresholds[k]), rate(ka, c.n_attack), rate(kb, c.n_bona_fide))


def _max_allowed_threshold(sorted_attacks: np.ndarray, level: float) -> Optional[float]:
    """Largest threshold with APCER <= level, or None for the end point (everything bona fide)."""
    k = math.floor(level * sorted_attacks.size + 1e-9)  # attacks allowed below the threshold
    return float(sorted_attacks[k]) if k < sorted_attacks.size else None


def bpcer_at_apcer(
    bona_fide_scores: Sequence[float] | np.ndarray,
    attack_scores: Sequence[float] | np.ndarray,
    apcer_level: float,
    species: Optional[Sequence[str]] = None,
) -> tuple[float, float]:
    """BPCER at the operating point where APCER = ``apcer_level`` (e.g. 0.1 for BPCER10).

    With finite data APCER moves in steps of ``1/N``: the operating point used is the one
    with the *largest* threshold whose APCER does not exceed ``apcer_level`` — i.e. the
    lowest BPCER attainable while letting through at most ``floor(apcer_level * N)`` of the
    ``N`` attacks. With ``species``, the APCER constrained is the **maximum over species**
    (ISO/IEC 30107-3): the largest threshold at which *every* species lets through at most
    ``floor(apcer_level * N_s)`` of its ``N_s`` attacks. Without, the APCER is pooled.
    Score direction: higher = attack; tie rule: ``score >= t`` is an attack.

    Returns:
        ``(bpcer, threshold)``; ``(0.0, inf)`` when the level allows every attack through
        (the end point of the DET curve).
    """
    _level(apcer_level, "apcer_level")
    b = _scores(bona_fide_scores, "bona fide scores")
    a = _scores(attack_scores, "attack scores")
    if species is None:
        groups = [np.sort(a)]
    else:
        sp = _species(species, a.size)
        groups = [np.sort(a[sp == s]) for s in sorted(set(sp.tolist()))]
    ts = [t for t in (_max_allowed_threshold(g, apcer_level) for g in groups) if t is not None]
    if not ts:
        return 0.0, math.inf
    t = min(ts)
    return bpcer(b, t), t


def apcer_at_bpcer(
    bona_fide_scores: Sequence[float] | np.ndarray,
    attack_scores: Sequence[float] | np.ndarray,
    bpcer_level: float,
) -> tuple[float, float]:
    """APCER at the operating point where BPCER = ``bpcer_level`` (FATE MORPH's headline).

    With finite data BPCER moves in steps of ``1/M``: the operating point used is the one
    with the *smallest* threshold whose BPCER does not exceed ``bpcer_level`` — i.e. the
    lowest APCER attainable while rejecting at most ``floor(bpcer_level * M)`` of the ``M``
    bona fide presentations. Score direction: higher = attack; tie rule: ``score >= t`` is
    an attack (tied bona fide scores are never split). The APCER is pooled over all attacks
    given; call it per species (or use :func:`apcer_per_species` at the returned threshold)
    for the per-species and maximum figures.

    Returns:
        ``(apcer, threshold)``; the threshold is an operating point of :func:`det_curve`
        (the smallest score above the ``(floor(level * M) + 1)``-th highest bona fide score,
        or the end point ``(1.0, inf)`` when there is none).
    """
    _level(bpcer_level, "bpcer_level")
    b = _scores(bona_fide_scores, "bona fide scores")
    a = _scores(attack_scores, "attack scores")
    k = math.floor(bpcer_level * b.size + 1e-9)  # bona fide allowed at or above the threshold
    allscores = np.concatenate([a, b])
    if k >= b.size:
        t = float(allscores.min())
        return apcer(a, t), t
    bk = np.sort(b)[::-1][k]
    above = allscores[allscores > bk]
    if above.size == 0:
        return 1.0, math.inf
    t = float(above.min())
    return apcer(a, t), t


def bpcer_at_apcer_levels(
    bona_fide_scores: Sequence[float] | np.ndarray,
    attack_scores: Sequence[float] | np.ndarray,
    levels: Sequence[float] = STANDARD_APCER_LEVELS,
    species: Optional[Sequence[str]] = None,
) -> dict[str, float]:
    """``{"BPCER@APCER=10%": bpcer, …}`` for each APCER level (see :func:`bpcer_at_apcer`;
    with ``species`` at the maximum-over-species APCER)."""
    return {
        f"BPCER@APCER={_pct(x)}": bpcer_at_apcer(bona_fide_scores, attack_scores, x, species)[0]
        for x in levels
    }


def apcer_at_bpcer_levels(
    bona_fide_scores: Sequence[float] | np.ndarray,
    attack_scores: Sequence[float] | np.ndarray,
    levels: Sequence[float] = STANDARD_BPCER_LEVELS,
) -> dict[str, float]:
    """``{"APCER@BPCER=10%": apcer, …}`` for each BPCER level (see :func:`apcer_at_bpcer`)."""
    return {f"APCER@BPCER={_pct(x)}": apcer_at_bpcer(bona_fide_scores, attack_scores, x)[0]
            for x in levels}


def resolution_note(n: int, level: float | Sequence[float], figure: str, what: str
                    ) -> Optional[str]:
    """A sample-size note when ``n < 1 / level``: the level cannot be resolved.

    Args:
        n: presentations of the constrained class (attacks for BPCER@APCER, bona fide for
            APCER@BPCER).
        level: the rate level, e.g. 0.01, or several levels (one note lists those that
            cannot be resolved).
        figure: the figure's name, ``"BPCER@APCER"`` or ``"APCER@BPCER"`` (a level suffix
            such as ``"=1%"`` is ignored).
        what: the class, e.g. ``"attack presentations"`` or ``"attacks of the smallest
            species (spliced)"``.

    Returns:
        ``None`` when every ``n * level >= 1``, else a sentence for the report.
    """
    levels = [level] if isinstance(level, (int, float)) else list(level)
    bad = [x for x in levels if x > 0 and n * x < 1 - 1e-9]
    if not bad:
        return None
    base = figure.split("=")[0]
    constrained = base.split("@")[-1]
    need = ", ".join(f"{math.ceil(1 / x - 1e-9)} for {_pct(x)}" for x in bad)
    step = f"{100 / n:.3g}%" if n else "n/a"
    return (f"{base} at {', '.join(_pct(x) for x in bad)}: only {n} {what}; a level x needs "
            f"at least 1/x ({need}), so {'this level' if len(bad) == 1 else 'these levels'} "
            f"cannot be resolved: {constrained} moves in steps of {step} and the figure is "
            f"taken at {constrained} = 0.")


def _pct(x: float) -> str:
    return f"{x * 100:g}%"


def _max_rate(rates: Mapping[str, Rate]) -> tuple[str, Rate]:
    s = max(sorted(rates), key=lambda k: rates[k].rate)  # first species with the maximum
    return s, rates[s]


def _species_rates(a: np.ndarray, sp: np.ndarray, t: float, end: bool = False
                   ) -> dict[str, Rate]:
    """APCER of each species at ``t`` (``end``: the end point, every attack bona fide)."""
    out = {}
    for s in sorted(set(sp.tolist())):
        a_s = a[sp == s]
        out[str(s)] = rate(a_s.size if end else int(np.count_nonzero(a_s < t)), a_s.size)
    return out


def _figures(b: np.ndarray, a: np.ndarray, sp: Optional[np.ndarray],
             levels: Sequence[float], bpcer_levels: Sequence[float],
             what: str) -> tuple[dict, dict, dict, list]:
    """(values, intervals, thresholds, notes) of D-EER, BPCER@APCER and APCER@BPCER."""
    vals: dict = {}
    iv: dict = {}
    thr: dict = {}
    notes: list = []
    dp = d_eer_point(b, a)
    vals.update({"D-EER": dp.eer, "D-EER threshold": dp.threshold,
                 "D-EER APCER": dp.apcer.rate, "D-EER BPCER": dp.bpcer.rate})
    iv.update({"D-EER APCER": dp.apcer.to_dict(), "D-EER BPCER": dp.bpcer.to_dict()})
    multi = sp is not None and len(set(sp.tolist())) > 1
    for x in levels:
        key = f"BPCER@APCER={_pct(x)}"
        bp, t = bpcer_at_apcer(b, a, x, sp if multi else None)
        vals[key] = bp
        thr[key] = t
        iv[key] = rate(round(bp * b.size), b.size).to_dict()
        if multi:
            pbp, pt = bpcer_at_apcer(b, a, x)
            vals[f"{key} (pooled)"] = pbp
            thr[f"{key} (pooled)"] = pt
            iv[f"{key} (pooled)"] = rate(round(pbp * b.size), b.size).to_dict()
    if multi:
        n_sp = {s: int(np.count_nonzero(sp == s)) for s in sorted(set(sp.tolist()))}
        s_min = min(n_sp, key=n_sp.get)
        notes.append(resolution_note(n_sp[s_min], levels, "BPCER@APCER",
                                     f"attacks of the smallest species ({s_min})"))
    else:
        notes.append(resolution_note(a.size, levels, "BPCER@APCER", what))
    for x in bpcer_levels:
        key = f"APCER@BPCER={_pct(x)}"
        ap, t = apcer_at_bpcer(b, a, x)
        vals[key] = ap
        thr[key] = t
        iv[key] = rate(round(ap * a.size), a.size).to_dict()
        if multi:
            s_max, r_max = _max_rate(_species_rates(a, sp, t, end=t == math.inf and ap == 1.0))
            vals[f"max {key}"] = r_max.rate
            iv[f"max {key}"] = {**r_max.to_dict(), "species": s_max}
    notes.append(resolution_note(b.size, bpcer_levels, "APCER@BPCER", "bona fide presentations"))
    return vals, iv, thr, [n for n in notes if n]


def pad_summary(
    bona_fide_scores: Sequence[float] | np.ndarray,
    attack_scores: Sequence[float] | np.ndarray,
    species: Sequence[str] | None = None,
    threshold: float | None = None,
    levels: Sequence[float] = STANDARD_APCER_LEVELS,
    bpcer_levels: Sequence[float] = STANDARD_BPCER_LEVELS,
) -> dict:
    """All standard PAD figures for one test set, as a JSON-ready dict.

    Args:
        bona_fide_scores: ``(M,)`` bona fide scores (higher = more likely attack; tie rule:
            ``score >= t`` is an attack).
        attack_scores: ``(N,)`` attack scores.
        species: optional ``N`` attack-species labels; adds per-species APCER (at
            ``threshold``), per-species figures, and makes the BPCER@APCER headline the
            ISO one (at the maximum-over-species APCER) beside the pooled one.
        threshold: the detector's operating threshold; adds APCER, BPCER, per-species
            APCER and max APCER at that point.
        levels: APCER levels of the BPCER@APCER figures.
        bpcer_levels: BPCER levels of the APCER@BPCER figures (default FATE MORPH's 10 %
            and 1 %; add levels with ``(*STANDARD_BPCER_LEVELS, 0.05)``).

    Returns:
        A dict whose float keys are unchanged from earlier versions —
        ``"n_bona_fide", "n_attack", "D-EER", "D-EER threshold", "BPCER@APCER=1%", …,
        ["threshold", "APCER", "BPCER", "APCER per species", "max APCER"],
        ["per species": {species: {"n", "D-EER", "BPCER@APCER=…", …}}]`` — plus
        ``"D-EER rule"`` (:data:`D_EER_RULE`), ``"D-EER APCER"`` / ``"D-EER BPCER"`` (at the
        D-EER operating point), ``"APCER@BPCER=10%"`` … (pooled), with several species
        ``"max APCER@BPCER=10%"`` … and ``"BPCER@APCER=10% (pooled)"`` …,
        ``"BPCER@APCER basis"`` (``"max APCER over species"`` or ``"pooled"``),
        ``"thresholds"`` (the operating threshold of each figure), ``"intervals"``
        (``{key: Rate.to_dict()}`` for every rate key: ``k``, ``n``, ``rate``, ``ci95``;
        ``"APCER per species"`` nested; ``"max …"`` entries name their ``species``) and
        ``"notes"`` (sample-size notes, :func:`resolution_note`; with several species the
        BPCER@APCER note is about the smallest species). Per species the same figures with
        their own ``"intervals"``, ``"thresholds"`` and ``"notes"``.
    """
    b = _scores(bona_fide_scores, "bona fide scores")
    a = _scores(attack_scores, "attack scores")
    sp = None if species is None else _species(species, a.size)
    multi = sp is not None and len(set(sp.tolist())) > 1
    vals, iv, thr, notes = _figures(b, a, sp, levels, bpcer_levels, "attack presentations")
    out: dict = {"n_bona_fide": int(b.size), "n_attack": int(a.size)}
    out.update(vals)
    out["D-EER rule"] = D_EER_RULE
    out["BPCER@APCER basis"] = "max APCER over species" if multi else "pooled"
    if threshold is not None:
        t = float(threshold)
        out["threshold"] = t
        ra = rate(int(np.count_nonzero(a < t)), a.size)
        rb = rate(int(np.count_nonzero(b >= t)), b.size)
        out["APCER"], out["BPCER"] = ra.rate, rb.rate
        iv["APCER"], iv["BPCER"] = ra.to_dict(), rb.to_dict()
        if sp is not None:
            per = _species_rates(a, sp, t)
            out["APCER per species"] = {s: r.rate for s, r in per.items()}
            s_max, r_max = _max_rate(per)
            out["max APCER"] = r_max.rate
            iv["APCER per species"] = {s: r.to_dict() for s, r in per.items()}
            iv["max APCER"] = {**r_max.to_dict(), "species": s_max}
    if sp is not None:
        per_sp = {}
        for s in sorted(set(sp.tolist())):
            a_s = a[sp == s]
            v_s, iv_s, thr_s, notes_s = _figures(b, a_s, None, levels, bpcer_levels,
                                                 f"{s} attacks")
            per_sp[str(s)] = {"n": int(a_s.size), **v_s, "thresholds": thr_s,
                              "intervals": iv_s, "notes": notes_s}
        out["per species"] = per_sp
    out["thresholds"] = thr
    out["intervals"] = iv
    out["notes"] = notes
    return out
