"""Vulnerability of face recognition to morphs: MAP, MMPMR, ProdAvg-MMPMR, FMMPMR, RMMR.

Every function takes a boolean **acceptance array**

    ``accept[m, s, a, c]`` — morph ``m`` was accepted (verified) as contributing subject
    ``s`` (0 = subject A, 1 = subject B; more subjects allowed) in attempt ``a`` (the
    comparison of the morph with the ``a``-th probe image of that subject) by face
    recognition system ``c``,

and optionally ``valid`` of the same shape (default: all ``True``), marking the attempts
that exist — subjects may have different numbers of probe images; invalid attempts are
never accepted and never counted. :func:`acceptance` builds both from similarity scores
(NaN = no such attempt).

**Score direction and tie rule** (:func:`acceptance`): scores are similarities (higher =
more similar) and an attempt is accepted when ``score >= threshold`` of its system, as in
:mod:`morphlab.metrics.thresholds`. (The authors' reference implementations of MAP and
MMPMR test ``score > threshold``; with a threshold calibrated by
:func:`~morphlab.metrics.thresholds.threshold_at_fmr` the two agree unless a morph score
equals the threshold exactly, which is placed just above an impostor score.)

Definitions (all rates in ``[0, 1]``; per system unless said otherwise):

- **MinMax-MMPMR** (Scherhag et al., "Biometric systems under morphing attacks:
  assessment of morphing techniques and vulnerability reporting", BIOSIG 2017; the MMPMR
  of Scherhag et al. 2017): the proportion of morphs whose *minimum over subjects* of the
  *maximum over attempts* of the score reaches the threshold — i.e. each subject is
  accepted in at least one attempt.
- **ProdAvg-MMPMR** (same paper): the mean over morphs of the *product over subjects* of
  the *fraction of that subject's attempts accepted*.
- **FMMPMR**, fully mated MMPMR (Venkatesh, Zhang, Ramachandra, Raja, Damer, Busch, "Can
  GAN generated morphs threaten face recognition systems equally as landmark based
  morphs? – Vulnerability and detection", IWBF 2020): the fraction of *attempts* in which
  *all* subjects are accepted at once. An attempt ``p`` pairs the ``p``-th probe of every
  subject (attempts beyond the smallest number of probes of the morph's subjects are not
  used); the rate is pooled over all morphs' attempts. (Pairing every probe of A with
  every probe of B instead gives exactly the ProdAvg-MMPMR of balanced data.)
- **RMMR**, relative morph match rate (Scherhag et al. 2017):
  ``RMMR(t) = 1 + (MMPMR(t) - TMR(t))`` with ``TMR = 1 - FNMR`` on bona fide genuine
  comparisons at the same threshold, i.e. ``MMPMR + FNMR``.
- **MAP**, morphing attack potential (Ferrara, Franco, Maltoni, Busch, "Morphing Attack
  Potential", IWBF 2022; adopted in ISO/IEC 20059): ``MAP[r, c]`` for ``r = 1..R``
  attempts and ``c = 1..C`` systems is the proportion of morphs for which **at least c
  systems** accept **at least r attempts of every contributing subject**. Per morph and
  system, the number of successful attempts is the minimum over subjects of the accepted
  attempts; ``R`` is the smallest number of valid attempts of any subject of any morph
  (the authors' implementation does the same). Each system must accept *both* subjects
  *by itself*:

  - ``MAP[1, 1]`` with one system equals its MinMax-MMPMR.
  - ``MAP[1, 1]`` over several systems is the fraction of morphs that **some single
    system** accepts as every subject (at least once each), so ``MAP[1, 1] >= max_c
    MinMax-MMPMR_c``. It is **not** the MinMax-MMPMR of the combined decision "accepted
    by at least one system": if system 1 accepts only subject A and system 2 only
    subject B, that combination counts the morph and ``MAP[1, 1]`` does not.
  - ``MAP[1, C]`` is the fraction of morphs that **every** system accepts as every
    subject, each system in attempts of its own, so ``MAP[1, C] <= min_c
    MinMax-MMPMR_c``. It is not the MinMax-MMPMR of "accepted by all systems in the same
    attempt" either (that can be smaller).

**Intervals and failure to enrol** (:func:`map_rates`): every MAP cell and MinMax-MMPMR is
``k`` of ``n`` morphs, given with a Wilson 95 % interval
(:func:`morphlab.metrics.intervals.rate`; morphs are taken as independent trials — morphs
sharing contributors are not quite, which a subject bootstrap accounts for). The
*conditional* rates divide by the morphs that could be scored (those in ``accept``); the
*unconditional* ones count the morphs that failed to enrol (no detectable face, so no score)
as failed attacks and divide by all morphs; the failure-to-enrol rate (FTE) is their
fraction of all morphs. ProdAvg-MMPMR (a mean of products) and FMMPMR (correlated attempts
pooled over morphs) are not binomial proportions of independent trials and get no
interval here.

All functions are pure NumPy on the arrays given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from morphlab.metrics.intervals import DEFAULT_METHOD, Method, Rate, rate


def acceptance(scores: np.ndarray, thresholds: Sequence[float] | np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Acceptance and validity arrays from morph-vs-probe similarity scores.

    Score direction: higher = more similar. Tie rule: an attempt is accepted when
    ``score >= threshold`` (a score equal to the threshold is accepted).

    Args:
        scores: ``(M, S, A, C)`` float similarities of morph ``m`` with probe ``a`` of
            subject ``s`` under system ``c``; NaN where the attempt does not exist.
        thresholds: ``(C,)`` per-system thresholds; accept when ``score >= threshold``.

    Returns:
        ``(accept, valid)``: two ``(M, S, A, C)`` bool arrays.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 4:
        raise ValueError(f"scores must be (morphs, subjects, attempts, systems), got {scores.shape}")
    thr = np.asarray(thresholds, dtype=np.float64).ravel()
    if thr.shape != (scores.shape[3],):
        raise ValueError(f"need one threshold per system ({scores.shape[3]}), got {thr.shape}")
    valid = ~np.isnan(scores)
    with np.errstate(invalid="ignore"):
        accept = valid & (scores >= thr)
    return accept, valid


def _check(accept: np.ndarray, valid: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    accept = np.asarray(accept)
    if accept.ndim != 4:
        raise ValueError(
            f"accept must be (morphs, subjects, attempts, systems), got shape {accept.shape}"
        )
    if accept.dtype != bool:
        raise ValueError(f"accept must be a bool array, got {accept.dtype}")
    if accept.shape[0] == 0:
        raise ValueError("no morphs to evaluate")
    if valid is None:
        valid = np.ones(accept.shape, dtype=bool)
    else:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != accept.shape:
            raise ValueError(f"valid has shape {valid.shape}, accept {accept.shape}")
    n_valid = valid.sum(axis=2)  # (M, S, C) attempts per subject and system
    if (n_valid == 0).any():
        m, s, c = np.argwhere(n_valid == 0)[0]
        raise ValueError(
            f"morph {m}, subject {s} has no verification attempts under system {c} "
            "(no usable probe images)"
        )
    return accept & valid, valid


def successful_attempts(accept: np.ndarray, valid: Optional[np.ndarray] = None) -> np.ndarray:
    """Per morph and system, the minimum over subjects of the accepted attempts, ``(M, C)`` int.

    Score direction and tie rule: ``accept`` holds the decisions ``similarity >= threshold``
    (higher = more similar; see :func:`acceptance`).
    """
    acc, _ = _check(accept, valid)
    return acc.sum(axis=2).min(axis=1)


def map_matrix(accept: np.ndarray, valid: Optional[np.ndarray] = None,
               *, return_counts: bool = False):
    """The MAP matrix (Ferrara et al., IWBF 2022).

    Score direction and tie rule: ``accept`` holds the decisions ``similarity >= threshold``
    (higher = more similar; see :func:`acceptance`). Each system must accept every subject by itself
    (see the module docstring: ``MAP[1, 1]`` over several systems is not the MinMax-MMPMR
    of "accepted by at least one system").

    Args:
        accept: ``(M, S, A, C)`` bool acceptance array (see the module docstring).
        valid: ``(M, S, A, C)`` bool, the attempts that exist (default all).
        return_counts: also return the number of morphs in each cell.

    Returns:
        ``(R, C)`` float64 with ``MAP[r - 1, c - 1]`` = proportion of morphs for which at
        least ``c`` systems accept at least ``r`` attempts of every subject; ``R`` = the
        smallest number of valid attempts of any subject. With ``return_counts``, a tuple
        ``(map, counts)`` where ``counts`` is ``(R, C)`` int.
    """
    acc, valid = _check(accept, valid)
    per_sys = acc.sum(axis=2).min(axis=1)  # (M, C)
    R = int(valid.sum(axis=2).min())
    ranked = -np.sort(-per_sys, axis=1)  # (M, C): c-th column = c-th best system's count
    r = np.arange(1, R + 1)[:, None, None]  # (R, 1, 1)
    counts = (ranked[None, :, :] >= r).sum(axis=1)  # (R, C)
    out = counts / acc.shape[0]
    return (out, counts) if return_counts else out


def minmax_mmpmr(accept: np.ndarray, valid: Optional[np.ndarray] = None) -> np.ndarray:
    """MinMax-MMPMR per system, ``(C,)``: fraction of morphs with every subject accepted at least once.

    Score direction and tie rule: ``accept`` holds the decisions ``similarity >= threshold``
    (higher = more similar; see :func:`acceptance`).
    """
    acc, _ = _check(accept, valid)
    return acc.any(axis=2).all(axis=1).mean(axis=0)


def prodavg_mmpmr(accept: np.ndarray, valid: Optional[np.ndarray] = None) -> np.ndarray:
    """ProdAvg-MMPMR per system, ``(C,)``: mean over morphs of the product over subjects of
    the fraction of that subject's attempts accepted.

    Score direction and tie rule: ``accept`` holds the decisions ``similarity >= threshold``
    (higher = more similar; see :func:`acceptance`).
    """
    acc, valid = _check(accept, valid)
    frac = acc.sum(axis=2) / valid.sum(axis=2)  # (M, S, C)
    return frac.prod(axis=1).mean(axis=0)


def fmmpmr(accept: np.ndarray, valid: Optional[np.ndarray] = None) -> np.ndarray:
    """FMMPMR per system, ``(C,)``: fraction of paired attempts in which every subject is accepted.

    Attempt ``p`` of a morph pairs the ``p``-th valid probe of each subject; a morph
    contributes ``min over subjects`` of its valid attempts.

    Score direction and tie rule: ``accept`` holds the decisions ``similarity >= threshold``
    (higher = more similar; see :func:`acceptance`).
    """
    acc, valid = _check(accept, valid)
    A = acc.shape[2]
    # move each subject's valid attempts to the front, keeping their order
    order = np.argsort(~valid, axis=2, kind="stable")
    packed = np.take_along_axis(acc, order, axis=2)  # (M, S, A, C)
    P = valid.sum(axis=2).min(axis=1)  # (M, C) paired attempts per morph and system
    used = np.arange(A)[None, :, None] < P[:, None, :]  # (M, A, C)
    both = packed.all(axis=1) & used
    return both.sum(axis=(0, 1)) / P.sum(axis=0)


def rmmr(mmpmr_value: float | np.ndarray, fnmr_value: float | np.ndarray) -> np.ndarray | float:
    """Relative morph match rate ``1 + (MMPMR - (1 - FNMR))`` (Scherhag et al. 2017).

    Args:
        mmpmr_value: MinMax- (or ProdAvg-) MMPMR at threshold ``t``.
        fnmr_value: FNMR of bona fide genuine comparisons at the same ``t``.

    Score direction and tie rule: both rates at the same similarity threshold ``t``,
    accepting ``score >= t`` (higher = more similar).
    """
    return 1.0 + (np.asarray(mmpmr_value) - (1.0 - np.asarray(fnmr_value)))


@dataclass(frozen=True)
class MapRates:
    """MAP and MinMax-MMPMR as counts with intervals, conditional and unconditional.

    Attributes:
        map: ``R x C`` nested list of :class:`~morphlab.metrics.intervals.Rate`, ``k`` of
            the ``n_morphs`` morphs that could be scored (``MAP[r-1][c-1]``).
        map_unconditional: the same counts over all ``n_morphs + n_failed_to_enrol`` morphs
            (failed enrolments count as failed attacks).
        minmax_mmpmr: ``C`` rates per system, conditional.
        minmax_mmpmr_unconditional: ``C`` rates per system, unconditional.
        fte: failure-to-enrol rate, ``n_failed_to_enrol`` of all morphs.
        n_morphs: morphs scored (the first axis of ``accept``).
        n_failed_to_enrol: morphs that could not be scored (no detectable face).
    """

    map: list
    map_unconditional: list
    minmax_mmpmr: list
    minmax_mmpmr_unconditional: list
    fte: Rate
    n_morphs: int
    n_failed_to_enrol: int

    def to_dict(self) -> dict:
        """JSON form; every rate as :meth:`Rate.to_dict <morphlab.metrics.intervals.Rate.to_dict>`."""
        def grid(g):
            return [[r.to_dict() for r in row] for row in g]

        return {
            "n_morphs": self.n_morphs,
            "n_failed_to_enrol": self.n_failed_to_enrol,
            "n_all": self.n_morphs + self.n_failed_to_enrol,
            "fte": self.fte.to_dict(),
            "map": grid(self.map),
            "map_unconditional": grid(self.map_unconditional),
            "minmax_mmpmr": [r.to_dict() for r in self.minmax_mmpmr],
            "minmax_mmpmr_unconditional": [r.to_dict() for r in self.minmax_mmpmr_unconditional],
        }


def map_rates(accept: np.ndarray, valid: Optional[np.ndarray] = None, *,
              n_failed_to_enrol: int = 0, method: Method = DEFAULT_METHOD,
              confidence: float = 0.95) -> MapRates:
    """Every MAP cell and MinMax-MMPMR as ``k`` of ``n`` morphs with a 95 % interval.

    Args:
        accept: ``(M, S, A, C)`` bool acceptance array of the morphs that could be scored.
        valid: ``(M, S, A, C)`` bool, the attempts that exist (default all).
        n_failed_to_enrol: morphs left out of ``accept`` because they could not be scored
            (no detectable face in the morph: failure to enrol); counted as failed attacks
            in the unconditional rates and as the FTE numerator.
        method, confidence: interval method (``"wilson"`` or ``"clopper-pearson"``).

    Score direction and tie rule: ``accept`` holds the decisions ``similarity >= threshold``
    (see :func:`acceptance`); the counts are those of :func:`map_matrix` and
    :func:`minmax_mmpmr`.

    Returns:
        A :class:`MapRates`.
    """
    if isinstance(n_failed_to_enrol, bool) or int(n_failed_to_enrol) != n_failed_to_enrol \
            or n_failed_to_enrol < 0:
        raise ValueError(f"n_failed_to_enrol must be an integer >= 0, got {n_failed_to_enrol!r}")
    fte_n = int(n_failed_to_enrol)
    acc, valid = _check(accept, valid)
    M = acc.shape[0]
    _, counts = map_matrix(acc, valid, return_counts=True)
    mm = acc.any(axis=2).all(axis=1).sum(axis=0)  # (C,) morphs with every subject accepted

    def r(k, n):
        return rate(int(k), int(n), method, confidence)

    return MapRates(
        map=[[r(k, M) for k in row] for row in counts],
        map_unconditional=[[r(k, M + fte_n) for k in row] for row in counts],
        minmax_mmpmr=[r(k, M) for k in mm],
        minmax_mmpmr_unconditional=[r(k, M + fte_n) for k in mm],
        fte=r(fte_n, M + fte_n),
        n_morphs=int(M),
        n_failed_to_enrol=fte_n,
    )
