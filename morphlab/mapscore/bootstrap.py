"""Subject bootstrap of map-score: thresholds and MAP resampled together.

One replicate draws subjects with replacement — separately within each stratum (subjects
only in the attack set, only in the calibration set, in both), so each stratum keeps its
size — and gives every comparison the product of its subjects' draw counts as its weight:
a genuine comparison ``w[s]``, an impostor comparison ``w[s] * w[t]``, a morph
``w[A] * w[B]``. Where every attack subject contributes to one pair only (and none is in
the calibration set), the pairs are the independent units and are drawn instead, a morph
weighing its pair's draw count (all morphs of a pair move together); the product weights
would there overstate the variance about threefold. A calibrated threshold is recomputed on the weighted impostor scores by
the rule of :func:`morphlab.metrics.thresholds.threshold_at_fmr` (the smallest threshold
with weighted FMR ≤ target: just above the score where the cumulative weight from the
top first exceeds ``floor(target × total weight)``); MAP, MinMax-MMPMR, FMR and FNMR are
recomputed at the replicate's thresholds. Intervals are the 2.5 and 97.5 percentiles over
the replicates with a defined value (a replicate that draws no morph or no impostor
pair has none). Everything is vectorised over replicates (chunks of up to 256); the same seed
gives the same intervals.

Scores are similarities; an attempt is accepted when ``score >= threshold``.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import numpy as np

CHUNK = 256


def _draw(rng: np.random.Generator, strata: Sequence[np.ndarray], n_subjects: int,
          b: int) -> np.ndarray:
    """``(b, n_subjects)`` draw counts, resampling each stratum within itself."""
    w = np.zeros((b, n_subjects))
    rows = np.arange(b)[:, None]
    for idx in strata:
        if idx.size:
            pick = idx[rng.integers(0, idx.size, size=(b, idx.size))]
            np.add.at(w, (rows, pick), 1.0)
    return w


def weighted_thresholds(imp: np.ndarray, weights: np.ndarray, target_fmr: float) -> np.ndarray:
    """Per replicate, the smallest threshold with weighted FMR ≤ ``target_fmr``.

    Args:
        imp: ``(N,)`` impostor similarities.
        weights: ``(B, N)`` non-negative weights.

    Returns:
        ``(B,)``; ``-inf`` where every comparison may be accepted, NaN where the total
        weight is 0.
    """
    order = np.argsort(-imp, kind="stable")
    s = imp[order]
    cum = np.cumsum(weights[:, order], axis=1)
    total = cum[:, -1]
    allowed = np.floor(target_fmr * total + 1e-9)
    over = cum > allowed[:, None]
    first = over.argmax(axis=1)
    thr = np.nextafter(s[first], np.inf)
    thr = np.where(over.any(axis=1), thr, -np.inf)
    return np.where(total > 0, thr, np.nan)


def _wmean(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted mean over the last axis of ``x`` (B, ..., M) with ``w`` (B, M)."""
    tot = w.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.einsum("b...m,bm->b...", x, w) / tot.reshape((-1,) + (1,) * (x.ndim - 2))


def subject_bootstrap(
    *,
    scores: np.ndarray,
    valid: np.ndarray,
    morph_subjects: Sequence[Sequence[str]],
    labels: Sequence[str],
    thresholds: np.ndarray,
    calibrated: Sequence[bool],
    genuine: Sequence[tuple[np.ndarray, np.ndarray]],
    impostor: Sequence[tuple[np.ndarray, np.ndarray]],
    target_fmr: float,
    n: int,
    seed: int = 0,
) -> dict:
    """Percentile 95 % intervals of thresholds, FMR, FNMR, MinMax-MMPMR and MAP.

    Args:
        scores: ``(M, S, A, C)`` morph-vs-probe similarities (NaN: not embedded).
        valid: ``(M, S, A, C)`` bool, the attempts that exist.
        morph_subjects: per morph, its ``S`` subject ids.
        labels: ``C`` system labels.
        thresholds: ``(C,)`` the point-estimate thresholds (used where not calibrated).
        calibrated: per system, whether its threshold is calibrated at ``target_fmr``.
        genuine: per system ``(scores (G,), subject ids (G,))``.
        impostor: per system ``(scores (N,), subject ids (N, 2))``.
        target_fmr: the calibration target.
        n: number of replicates (> 0).
        seed: random seed.

    Returns:
        JSON-ready dict (see map.json ``bootstrap``).
    """
    C = scores.shape[3]
    attack = {str(s) for ms in morph_subjects for s in ms}
    cal = {str(s) for _, subj in genuine for s in subj} | \
          {str(s) for _, subj in impostor for s in np.ravel(subj)}
    universe = sorted(attack | cal)
    index = {s: i for i, s in enumerate(universe)}
    strata = [np.array([index[s] for s in sorted(group)], dtype=int)
              for group in (attack - cal, cal - attack, attack & cal)]
    ms_idx = np.array([[index[str(s)] for s in ms] for ms in morph_subjects], dtype=int)  # (M, S)
    gen_idx = [np.array([index[str(s)] for s in subj], dtype=int) for _, subj in genuine]
    imp_idx = [np.array([[index[str(a)], index[str(b)]] for a, b in subj], dtype=int).reshape(-1, 2)
               for _, subj in impostor]
    # disjoint pairs (every attack subject in one pair, none in the calibration set): the
    # independent units of the attack side are the pairs, resampled as wholes
    pair_of = _pairs(ms_idx) if not (attack & cal) else None
    R = int(valid.sum(axis=2).min())
    rng = np.random.default_rng(seed)
    acc_thr, acc_fmr, acc_fnmr, acc_mm, acc_map = [], [], [], [], []
    done = 0
    # replicates per chunk: at most CHUNK, and ~2e7 weights per (replicates x comparisons) array
    widest = max([1, scores.size // max(C, 1)] + [i[0].size for i in impostor])
    chunk = int(max(1, min(CHUNK, 20_000_000 // widest)))
    while done < n:
        b = min(chunk, n - done)
        done += b
        w = _draw(rng, strata, len(universe), b)
        if pair_of is None:
            wm = w[:, ms_idx].prod(axis=2)  # (b, M)
        else:
            n_pairs = int(pair_of.max()) + 1
            wm = _draw(rng, [np.arange(n_pairs)], n_pairs, b)[:, pair_of]
        thr = np.tile(thresholds.astype(np.float64), (b, 1))  # (b, C)
        fmr_b = np.full((b, C), np.nan)
        fnmr_b = np.full((b, C), np.nan)
        for c in range(C):
            imp_s = impostor[c][0]
            wi = w[:, imp_idx[c][:, 0]] * w[:, imp_idx[c][:, 1]] if imp_s.size else None
            if calibrated[c] and imp_s.size:
                thr[:, c] = weighted_thresholds(imp_s, wi, target_fmr)
            if imp_s.size:
                fmr_b[:, c] = _wmean((imp_s[None, :] >= thr[:, c:c + 1]).astype(float), wi)
            gen_s = genuine[c][0]
            if gen_s.size:
                wg = w[:, gen_idx[c]]
                fnmr_b[:, c] = _wmean((gen_s[None, :] < thr[:, c:c + 1]).astype(float), wg)
        with np.errstate(invalid="ignore"):
            acc = valid[None] & (scores[None] >= thr[:, None, None, None, :])  # (b, M, S, A, C)
        succ = acc.sum(axis=3).min(axis=2)  # (b, M, C)
        ranked = -np.sort(-succ, axis=2)
        r = np.arange(1, R + 1)
        ind = (ranked[:, :, None, :] >= r[None, None, :, None]).astype(float)  # (b, M, R, C)
        mp = _wmean(np.moveaxis(ind, 1, -1), wm)  # (b, R, C)
        mm = _wmean(np.moveaxis((succ >= 1).astype(float), 1, -1), wm)  # (b, C)
        acc_thr.append(thr)
        acc_fmr.append(fmr_b)
        acc_fnmr.append(fnmr_b)
        acc_mm.append(mm)
        acc_map.append(mp)

    def interval(x: np.ndarray):
        x = np.asarray(x, dtype=np.float64)
        ok = ~np.isnan(x)
        if not ok.any():
            return [None, None]
        finite = x[ok]
        lo, hi = np.percentile(finite, [2.5, 97.5])
        return [_clean(lo), _clean(hi)]

    thr_all = np.concatenate(acc_thr)
    fmr_all, fnmr_all = np.concatenate(acc_fmr), np.concatenate(acc_fnmr)
    mm_all, map_all = np.concatenate(acc_mm), np.concatenate(acc_map)
    defined = ~np.isnan(mm_all[:, 0])
    design = ("contributor pairs resampled as wholes (each attack subject is in one pair)"
              if pair_of is not None else
              "a morph weighs the product of its contributors' draw counts (conservative "
              "where subjects appear in one morph only)")
    return {
        "method": "subject bootstrap (subjects resampled with replacement within each stratum; "
                  f"attack side: {design}; thresholds recalibrated and MAP recomputed per "
                  "replicate), percentile 95 %",
        "replicates": int(n),
        "replicates_defined": int(defined.sum()),
        "seed": int(seed),
        "per_system": {
            label: {
                "threshold": interval(thr_all[:, c]),
                "fmr": interval(fmr_all[:, c]),
                "fnmr": interval(fnmr_all[:, c]),
                "minmax_mmpmr": interval(mm_all[:, c]),
            } for c, label in enumerate(labels)
        },
        "map": [[interval(map_all[:, r, c]) for c in range(C)] for r in range(R)],
    }


def _pairs(ms_idx: np.ndarray) -> Optional[np.ndarray]:
    """``(M,)`` pair index of each morph when no subject is in two different pairs, else None."""
    pairs: dict[frozenset, int] = {}
    owner: dict[int, frozenset] = {}
    out = np.zeros(len(ms_idx), dtype=int)
    for m, row in enumerate(ms_idx):
        key = frozenset(int(x) for x in row)
        for s_ in key:
            if owner.setdefault(s_, key) != key:
                return None
        out[m] = pairs.setdefault(key, len(pairs))
    return out


def _clean(x: float) -> Optional[float]:
    x = float(x)
    return x if math.isfinite(x) else None


def comparison_inputs(comps: Mapping[str, object], labels: Sequence[str]):
    """``(genuine, impostor)`` lists of ``(scores, subjects)`` per system for
    :func:`subject_bootstrap` from :class:`~morphlab.mapscore.calibration.Comparisons`."""
    gen = [(comps[lab].scores("genuine"), comps[lab].genuine_subjects) for lab in labels]
    imp = [(comps[lab].scores("impostor"), comps[lab].impostor_subjects) for lab in labels]
    return gen, imp
