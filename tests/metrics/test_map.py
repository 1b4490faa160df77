"""MAP and MMPMR variants: hand-computed cases and an independent loop formulation."""

from __future__ import annotations

import numpy as np
import pytest

from morphlab.metrics.map import (
    acceptance,
    fmmpmr,
    map_matrix,
    map_rates,
    minmax_mmpmr,
    prodavg_mmpmr,
    rmmr,
    successful_attempts,
)


def _hand_case() -> np.ndarray:
    """3 morphs x 2 subjects x 3 attempts x 2 systems, written out per morph and system."""
    rows = {  # (morph, system): (subject A attempts, subject B attempts)
        (0, 0): ([1, 1, 0], [1, 0, 0]),
        (0, 1): ([1, 1, 1], [1, 1, 0]),
        (1, 0): ([0, 0, 0], [1, 1, 1]),
        (1, 1): ([1, 0, 0], [0, 1, 0]),
        (2, 0): ([1, 1, 1], [1, 1, 1]),
        (2, 1): ([0, 0, 0], [0, 0, 0]),
    }
    acc = np.zeros((3, 2, 3, 2), dtype=bool)
    for (m, c), (a, b) in rows.items():
        acc[m, 0, :, c] = a
        acc[m, 1, :, c] = b
    return acc


def test_hand_case_exact_values():
    acc = _hand_case()
    # successful attempts = min over subjects of accepted attempts: m0 (1, 2), m1 (0, 1), m2 (3, 0)
    np.testing.assert_array_equal(successful_attempts(acc), [[1, 2], [0, 1], [3, 0]])
    mp, counts = map_matrix(acc, return_counts=True)
    np.testing.assert_array_equal(counts, [[3, 1], [2, 0], [1, 0]])
    np.testing.assert_allclose(mp, [[1.0, 1 / 3], [2 / 3, 0.0], [1 / 3, 0.0]])
    np.testing.assert_allclose(minmax_mmpmr(acc), [2 / 3, 2 / 3])
    np.testing.assert_allclose(prodavg_mmpmr(acc), [11 / 27, 7 / 27])
    np.testing.assert_allclose(fmmpmr(acc), [4 / 9, 2 / 9])


def test_map_1_1_of_one_system_is_minmax_mmpmr():
    acc = _hand_case()
    for c in range(2):
        one = acc[..., c : c + 1]
        assert map_matrix(one)[0, 0] == pytest.approx(minmax_mmpmr(one)[0])
    rng = np.random.default_rng(1)
    for _ in range(20):
        acc = rng.random((30, 2, 4, 1)) < rng.uniform(0.1, 0.9)
        assert map_matrix(acc)[0, 0] == pytest.approx(minmax_mmpmr(acc)[0])


def test_missing_attempts_are_never_counted():
    acc = _hand_case()
    valid = np.ones_like(acc)
    valid[0, 1, 2, :] = False  # morph 0's subject B has only 2 probes
    acc[0, 1, 2, :] = True  # an accepted score on a missing attempt must be ignored
    mp = map_matrix(acc, valid)
    assert mp.shape == (2, 2)  # R = smallest number of attempts = 2
    np.testing.assert_allclose(mp, [[1.0, 1 / 3], [2 / 3, 0.0]])
    # ProdAvg uses 2 attempts for that subject: m0 sys0 = 2/3 * 1/2; sys1 = 1 * 2/2
    np.testing.assert_allclose(prodavg_mmpmr(acc, valid), [(1 / 3 + 0 + 1) / 3, (1 + 1 / 9 + 0) / 3])
    # FMMPMR pairs only 2 attempts for morph 0: sys0 1 of 2, sys1 2 of 2 (then 0/3, 3/3 and 0/3)
    np.testing.assert_allclose(fmmpmr(acc, valid), [(1 + 0 + 3) / 8, (2 + 0 + 0) / 8])


def test_acceptance_tie_rule_and_nan():
    scores = np.array([0.5, 0.4999, np.nan, 0.7]).reshape(1, 2, 2, 1)
    acc, valid = acceptance(scores, [0.5])
    np.testing.assert_array_equal(acc.ravel(), [True, False, False, True])
    np.testing.assert_array_equal(valid.ravel(), [True, True, False, True])


def test_rmmr_is_mmpmr_plus_fnmr():
    assert rmmr(0.7, 0.05) == pytest.approx(0.75)
    assert rmmr(1.0, 0.0) == pytest.approx(1.0)  # an ideal system fully fooled
    np.testing.assert_allclose(rmmr(np.array([0.2, 0.4]), np.array([0.1, 0.0])), [0.3, 0.4])


def test_bad_input():
    with pytest.raises(ValueError, match="no verification attempts"):
        acc = np.zeros((2, 2, 2, 1), dtype=bool)
        valid = np.ones_like(acc)
        valid[1, 0] = False
        map_matrix(acc, valid)
    with pytest.raises(ValueError, match="bool"):
        map_matrix(np.zeros((2, 2, 2, 1)))
    with pytest.raises(ValueError, match="morphs, subjects"):
        minmax_mmpmr(np.zeros((2, 2, 2), dtype=bool))
    with pytest.raises(ValueError, match="no morphs"):
        map_matrix(np.zeros((0, 2, 2, 1), dtype=bool))
    with pytest.raises(ValueError, match="one threshold per system"):
        acceptance(np.zeros((1, 2, 2, 2)), [0.1])


# -- independent formulation: per-morph loops over dictionaries of scores, as the metrics'
#    authors state them, with the strict/loose tie handled by the threshold ------------------
def _loop_metrics(scores, thr):
    """scores[m][s] = list of per-system score lists; returns (MAP, minmax, prodavg, fmmpmr)."""
    M = len(scores)
    C = len(thr)
    R = min(len(att) for morph in scores for att in morph)
    minmax, prodavg = np.zeros(C), np.zeros(C)
    fm_num, fm_den = np.zeros(C), np.zeros(C)
    best = []
    for morph in scores:
        per_sys = []
        for c in range(C):
            acc = [[att[c] >= thr[c] for att in subj] for subj in morph]
            per_sys.append(min(sum(a) for a in acc))
            minmax[c] += all(any(a) for a in acc)
            p = 1.0
            for a in acc:
                p *= sum(a) / len(a)
            prodavg[c] += p
            P = min(len(a) for a in acc)
            fm_num[c] += sum(all(a[i] for a in acc) for i in range(P))
            fm_den[c] += P
        best.append(sorted(per_sys, reverse=True))
    mp = np.zeros((R, C))
    for r in range(1, R + 1):
        for c in range(1, C + 1):
            mp[r - 1, c - 1] = sum(b[c - 1] >= r for b in best) / M
    return mp, minmax / M, prodavg / M, fm_num / fm_den


def test_agrees_with_loop_formulation_on_random_data():
    rng = np.random.default_rng(0)
    for trial in range(15):
        M, S, A, C = rng.integers(1, 25), 2, rng.integers(1, 6), rng.integers(1, 4)
        scores = rng.random((M, S, A, C))
        thr = rng.uniform(0.2, 0.8, size=C)
        # put some scores exactly on their system's threshold to exercise the tie rule
        on = rng.random(scores.shape) < 0.05
        scores[on] = np.broadcast_to(thr, scores.shape)[on]
        # drop some trailing attempts per (morph, subject), keeping at least one
        n = rng.integers(1, A + 1, size=(M, S))
        for m in range(M):
            for s in range(S):
                scores[m, s, n[m, s]:, :] = np.nan
        nested = [[[tuple(scores[m, s, a]) for a in range(n[m, s])] for s in range(S)]
                  for m in range(M)]
        acc, valid = acceptance(scores, thr)
        mp, mm, pa, fm = _loop_metrics(nested, thr)
        np.testing.assert_allclose(map_matrix(acc, valid), mp, err_msg=f"trial {trial}")
        np.testing.assert_allclose(minmax_mmpmr(acc, valid), mm)
        np.testing.assert_allclose(prodavg_mmpmr(acc, valid), pa)
        np.testing.assert_allclose(fmmpmr(acc, valid), fm)


def test_map_1_1_is_not_minmax_of_accepted_by_at_least_one_system():
    """Counter-example to the old docstring: system 1 accepts only subject A, system 2 only
    subject B. "Accepted by at least one system" (attempt-level OR) counts the morph; MAP
    needs one system to accept both subjects and does not."""
    acc = np.zeros((1, 2, 1, 2), dtype=bool)
    acc[0, 0, 0, 0] = True  # system 1 accepts subject A
    acc[0, 1, 0, 1] = True  # system 2 accepts subject B
    either = acc.any(axis=3, keepdims=True)
    assert minmax_mmpmr(either)[0] == 1.0
    assert map_matrix(acc)[0, 0] == 0.0
    np.testing.assert_array_equal(minmax_mmpmr(acc), [0.0, 0.0])


def test_map_1_c_is_not_minmax_of_accepted_by_all_in_the_same_attempt():
    """Each system accepts both subjects, but in different attempts: MAP[1, 2] = 1 while
    "accepted by both systems in the same attempt" (attempt-level AND) gives 0."""
    acc = np.zeros((1, 2, 2, 2), dtype=bool)
    acc[0, :, 0, 0] = True  # system 1: attempt 1 of both subjects
    acc[0, :, 1, 1] = True  # system 2: attempt 2 of both subjects
    both = acc.all(axis=3, keepdims=True)
    assert map_matrix(acc)[0, 1] == 1.0
    assert minmax_mmpmr(both)[0] == 0.0


def test_map_first_row_bounds_on_random_data():
    rng = np.random.default_rng(4)
    for _ in range(30):
        acc = rng.random((rng.integers(1, 30), 2, rng.integers(1, 4), rng.integers(2, 4))) < 0.5
        mp, mm = map_matrix(acc), minmax_mmpmr(acc)
        assert mp[0, 0] >= mm.max() - 1e-12 and mp[0, -1] <= mm.min() + 1e-12
        # MAP[1, 1] = morphs some single system accepts as both subjects
        ref = np.mean([any(acc[m, :, :, c].any(axis=1).all() for c in range(acc.shape[3]))
                       for m in range(acc.shape[0])])
        assert mp[0, 0] == pytest.approx(ref)


def test_map_rates_hand_case():
    from morphlab.metrics.intervals import wilson_interval

    acc = _hand_case()  # counts [[3, 1], [2, 0], [1, 0]] of 3 morphs; MinMax 2, 2
    r = map_rates(acc, n_failed_to_enrol=1)
    assert [[c.k for c in row] for row in r.map] == [[3, 1], [2, 0], [1, 0]]
    assert {c.n for row in r.map for c in row} == {3}
    assert {c.n for row in r.map_unconditional for c in row} == {4}
    assert r.map_unconditional[0][0].rate == 0.75  # 3 of 4: the no-face morph failed
    assert [m.k for m in r.minmax_mmpmr] == [2, 2]
    assert r.minmax_mmpmr_unconditional[0].rate == 0.5
    assert (r.fte.k, r.fte.n, r.fte.rate) == (1, 4, 0.25)
    assert (r.map[1][0].low, r.map[1][0].high) == pytest.approx(wilson_interval(2, 3))
    d = r.to_dict()
    assert d["n_all"] == 4 and d["map"][0][1]["k"] == 1 and d["fte"]["rate"] == 0.25
    assert d["map_unconditional"][2][0]["n"] == 4
    cp = map_rates(acc, method="clopper-pearson")
    assert cp.map[0][0].method == "clopper-pearson" and cp.fte.n == 3 and cp.fte.k == 0
    with pytest.raises(ValueError, match="n_failed_to_enrol"):
        map_rates(acc, n_failed_to_enrol=-1)
    with pytest.raises(ValueError, match="n_failed_to_enrol"):
        map_rates(acc, n_failed_to_enrol=1.5)


def test_map_rates_agree_with_map_matrix_on_random_data():
    rng = np.random.default_rng(6)
    for _ in range(15):
        M, A, C = rng.integers(1, 25), rng.integers(1, 5), rng.integers(1, 4)
        acc = rng.random((M, 2, A, C)) < rng.uniform(0.2, 0.9)
        f = int(rng.integers(0, 5))
        r = map_rates(acc, n_failed_to_enrol=f)
        np.testing.assert_allclose([[c.rate for c in row] for row in r.map], map_matrix(acc))
        np.testing.assert_allclose([[c.rate for c in row] for row in r.map_unconditional],
                                   map_matrix(acc) * M / (M + f))
        np.testing.assert_allclose([m.rate for m in r.minmax_mmpmr], minmax_mmpmr(acc))
        for row in r.map:
            for c in row:
                assert c.low <= c.rate <= c.high
