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
  (the authors' implementation does the same). ``MAP[1, 1]`` with one system equals
  MinMax-MMPMR; ``MAP[1, C]`` is the MinMax-MMPMR of "accepted by all systems" and
  ``MAP[1, 1]`` over several systems that of "accepted by at least one system".
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def acceptance(scores: np.ndarray, thresholds: Sequence[float] | np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Acceptance and validity arrays from morph-vs-probe similarity scores.

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
    """Per morph and system, the minimum over subjects of the accepted attempts, ``(M, C)`` int."""
    acc, _ = _check(accept, valid)
    return acc.sum(axis=2).min(axis=1)


def map_matrix(accept: np.ndarray, valid: Optional[np.ndarray] = None,
               *, return_counts: bool = False):
    """The MAP matrix (Ferrara et al., IWBF 2022).

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
    """MinMax-MMPMR per system, ``(C,)``: fraction of morphs with every subject accepted at least once."""
    acc, _ = _check(accept, valid)
    return acc.any(axis=2).all(axis=1).mean(axis=0)


def prodavg_mmpmr(accept: np.ndarray, valid: Optional[np.ndarray] = None) -> np.ndarray:
    """ProdAvg-MMPMR per system, ``(C,)``: mean over morphs of the product over subjects of
    the fraction of that subject's attempts accepted."""
    acc, valid = _check(accept, valid)
    frac = acc.sum(axis=2) / valid.sum(axis=2)  # (M, S, C)
    return frac.prod(axis=1).mean(axis=0)


def fmmpmr(accept: np.ndarray, valid: Optional[np.ndarray] = None) -> np.ndarray:
    """FMMPMR per system, ``(C,)``: fraction of paired attempts in which every subject is accepted.

    Attempt ``p`` of a morph pairs the ``p``-th valid probe of each subject; a morph
    contributes ``min over subjects`` of its valid attempts.
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
    """
    return 1.0 + (np.asarray(mmpmr_value) - (1.0 - np.asarray(fnmr_value)))
