"""PAD metrics: exact hand-computed cases and agreement with an independent formulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from morphlab.metrics import pad

# bona fide 0.1..0.4, attacks 0.35..0.8 — worked by hand below
BF = [0.1, 0.2, 0.3, 0.4]
AT = [0.35, 0.5, 0.6, 0.7, 0.8]


def test_apcer_bpcer_tie_rule():
    # score >= t is an attack: the bona fide 0.4 counts as rejected at t = 0.4
    assert pad.bpcer(BF, 0.4) == 0.25
    assert pad.bpcer(BF, 0.41) == 0.0
    assert pad.apcer(AT, 0.5) == 0.2  # only 0.35 < 0.5
    assert pad.apcer(AT, 0.35) == 0.0
    assert pad.apcer(AT, math.inf) == 1.0
    assert pad.bpcer(BF, -math.inf) == 1.0


def test_det_curve_hand_computed():
    c = pad.det_curve(BF, AT)
    np.testing.assert_array_equal(
        c.thresholds, [0.1, 0.2, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8, np.inf])
    np.testing.assert_allclose(c.apcer, [0, 0, 0, 0, .2, .2, .4, .6, .8, 1])
    np.testing.assert_allclose(c.bpcer, [1, .75, .5, .25, .25, 0, 0, 0, 0, 0])


def test_d_eer_hand_computed():
    # bracketing points: t=0.4 (APCER .2, BPCER .25) and t=0.5 (.2, 0); the segment
    # between them crosses APCER = BPCER at 0.2; t=0.4 is the closer operating point
    eer, t = pad.d_eer(BF, AT)
    assert eer == pytest.approx(0.2, abs=1e-12)
    assert t == 0.4


def test_d_eer_with_ties():
    # thresholds 0,1,2,inf: APCER 0,0,2/3,1; BPCER 1,2/3,0,0 → segment midpoint 1/3;
    # both bracketing points are 2/3 away from the diagonal → the upper (t=2) is returned
    eer, t = pad.d_eer([0, 1, 1], [1, 1, 2])
    assert eer == pytest.approx(1 / 3, abs=1e-12)
    assert t == 2.0


def test_perfect_and_inverted_separation():
    assert pad.d_eer([0, 1], [2, 3]) == (0.0, 2.0)
    eer, _ = pad.d_eer([2, 3], [0, 1])  # direction reversed: everything wrong
    assert eer == 1.0
    assert pad.bpcer_at_apcer([0, 1], [2, 3], 0.1) == (0.0, 2.0)


def test_bpcer_at_apcer_hand_computed():
    # N=5 attacks: 10 % allows floor(0.5)=0 attacks below t → t = 0.35, BPCER = 1/4;
    # 20 % allows 1 → t = 0.5, BPCER = 0
    assert pad.bpcer_at_apcer(BF, AT, 0.10) == (0.25, 0.35)
    assert pad.bpcer_at_apcer(BF, AT, 0.20) == (0.0, 0.5)
    assert pad.bpcer_at_apcer(BF, AT, 0.0) == (0.25, 0.35)
    assert pad.bpcer_at_apcer(BF, AT, 1.0) == (0.0, math.inf)
    levels = pad.bpcer_at_apcer_levels(BF, AT)
    assert levels == {"BPCER@APCER=1%": 0.25, "BPCER@APCER=5%": 0.25,
                      "BPCER@APCER=10%": 0.25, "BPCER@APCER=20%": 0.0}
    # exact level on a 10-attack set: 0.1 * 10 = 1 attack may pass
    a10 = np.arange(10) + 0.5
    assert pad.bpcer_at_apcer([0.0, 1.0, 2.0, 3.0], a10, 0.1) == (0.5, 1.5)


def test_per_species_and_summary():
    sp = ["landmark/complete", "landmark/spliced", "landmark/spliced",
          "landmark/complete", "landmark/complete"]
    per = pad.apcer_per_species(AT, sp, 0.65)
    # complete: 0.35, 0.7, 0.8 → 1/3 below; spliced: 0.5, 0.6 → 2/2 below
    assert per == {"landmark/complete": pytest.approx(1 / 3), "landmark/spliced": 1.0}
    assert pad.max_apcer(per) == 1.0
    s = pad.pad_summary(BF, AT, species=sp, threshold=0.65)
    assert s["n_bona_fide"] == 4 and s["n_attack"] == 5
    assert s["D-EER"] == pytest.approx(0.2)
    assert s["APCER"] == 0.6 and s["BPCER"] == 0.0 and s["max APCER"] == 1.0
    assert s["per species"]["landmark/spliced"]["n"] == 2
    # spliced alone: attacks 0.5, 0.6 are above every bona fide score
    assert s["per species"]["landmark/spliced"]["D-EER"] == 0.0


def test_bad_input():
    with pytest.raises(ValueError, match="no scores"):
        pad.d_eer([], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        pad.apcer([np.nan, 1.0], 0.5)
    with pytest.raises(ValueError, match="species"):
        pad.apcer_per_species([1.0, 2.0], ["a"], 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pad.bpcer_at_apcer([0.0], [1.0], 10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_independent_roc_formulation(seed):
    """scikit-learn's ROC (positives = attacks, ``score >= t`` positive) and a brentq EER."""
    metrics = pytest.importorskip("sklearn.metrics")
    from scipy.interpolate import interp1d
    from scipy.optimize import brentq

    rng = np.random.default_rng(seed)
    b = rng.normal(0.0, 1.0, 300)
    a = rng.normal(1.2, 1.3, 200)
    y = np.r_[np.zeros(b.size), np.ones(a.size)]
    fpr, tpr, thr = metrics.roc_curve(y, np.r_[b, a], drop_intermediate=False)
    # the same operating points: BPCER = FPR, APCER = 1 - TPR
    c = pad.det_curve(b, a)
    mine = {(round(x, 12), round(z, 12)) for x, z in zip(c.apcer, c.bpcer)}
    theirs = {(round(1 - t, 12), round(f, 12)) for f, t in zip(fpr, tpr)}
    assert theirs <= mine and len(mine - theirs) <= 1  # sklearn may omit APCER=0,BPCER=1
    # the classic EER recipe: where 1 - FPR = TPR on the linearly interpolated ROC
    eer_ref = brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0, xtol=1e-12)
    assert pad.d_eer(b, a)[0] == pytest.approx(eer_ref, abs=1e-9)
    # BPCER@APCER = min FPR subject to 1 - TPR <= level
    for level in pad.STANDARD_APCER_LEVELS:
        ref = fpr[(1 - tpr) <= level + 1e-12].min()
        assert pad.bpcer_at_apcer(b, a, level)[0] == pytest.approx(ref, abs=1e-12)
    # EER bounds that hold for any staircase: max_t min(A,B) <= EER <= min_t max(A,B)
    e = pad.d_eer(b, a)[0]
    assert np.max(np.minimum(c.apcer, c.bpcer)) <= e + 1e-12
    assert e <= np.min(np.maximum(c.apcer, c.bpcer)) + 1e-12


# -- APCER@BPCER, BPCER@APCER at the maximum-over-species APCER, ±inf, intervals, notes ------
SP = ["landmark/complete", "landmark/spliced", "landmark/spliced",
      "landmark/complete", "landmark/complete"]  # complete: .35 .7 .8; spliced: .5 .6


def test_apcer_at_bpcer_hand_computed():
    # M=4 bona fide: 10 % allows floor(0.4)=0 bona fide at or above t → t > 0.4 → the next
    # score 0.5; APCER = 1/5 (0.35 < 0.5)
    assert pad.apcer_at_bpcer(BF, AT, 0.10) == (0.2, 0.5)
    assert pad.apcer_at_bpcer(BF, AT, 0.01) == (0.2, 0.5)
    assert pad.apcer_at_bpcer(BF, AT, 0.25) == (0.0, 0.35)  # one may be rejected: t > 0.3
    assert pad.apcer_at_bpcer(BF, AT, 1.0) == (0.0, 0.1)  # everything may be rejected
    assert pad.apcer_at_bpcer(BF, AT, 0.0) == (0.2, 0.5)
    # bona fide above every attack: the end point (everything bona fide)
    assert pad.apcer_at_bpcer([5.0], [1.0, 2.0], 0.1) == (1.0, math.inf)
    assert pad.apcer_at_bpcer_levels(BF, AT) == {"APCER@BPCER=10%": 0.2, "APCER@BPCER=1%": 0.2}
    with pytest.raises(ValueError, match=r"bpcer_level must be in \[0, 1\]"):
        pad.apcer_at_bpcer(BF, AT, math.nan)


def test_bpcer_at_max_species_apcer_hand_computed():
    # APCER 20 %: pooled allows 1 of 5 attacks below t → t = 0.5, BPCER 0; but then
    # landmark/complete has 1 of 3 = 33 % below. Max over species: complete allows
    # floor(0.6)=0 → t <= 0.35, spliced floor(0.4)=0 → t <= 0.5 → t = 0.35, BPCER 1/4
    assert pad.bpcer_at_apcer(BF, AT, 0.2) == (0.0, 0.5)
    assert pad.bpcer_at_apcer(BF, AT, 0.2, species=SP) == (0.25, 0.35)
    # 50 %: complete floor(1.5)=1 → 0.7, spliced floor(1.0)=1 → 0.6 → t = 0.6, BPCER 0
    assert pad.bpcer_at_apcer(BF, AT, 0.5, species=SP) == (0.0, 0.6)
    assert pad.bpcer_at_apcer(BF, AT, 1.0, species=SP) == (0.0, math.inf)
    assert pad.bpcer_at_apcer_levels(BF, AT, (0.2,), SP) == {"BPCER@APCER=20%": 0.25}


def _brute(b, a, sp, level_apcer=None, level_bpcer=None):
    """Exhaustive search over every operating point, the end point written out separately."""
    pts = []
    for t in sorted(set(b) | set(a)):
        per = [np.mean([x < t for x, s in zip(a, sp) if s == g]) for g in set(sp)]
        pts.append((t, np.mean([x < t for x in a]), max(per), np.mean([x >= t for x in b])))
    pts.append((math.inf, 1.0, 1.0, 0.0))  # everything classified bona fide
    if level_apcer is not None:
        ok = [p for p in pts if p[2] <= level_apcer + 1e-12]
        return min(p[3] for p in ok)
    ok = [p for p in pts if p[3] <= level_bpcer + 1e-12]
    return min(p[1] for p in ok)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_level_figures_agree_with_brute_force(seed):
    rng = np.random.default_rng(seed)
    b = list(np.round(rng.normal(0, 1, rng.integers(3, 40)), 1))
    a = list(np.round(rng.normal(1, 1, rng.integers(3, 40)), 1))
    if seed % 2:  # ±inf scores at both ends
        b[0], a[0], a[1] = np.inf, -np.inf, np.inf
    sp = list(rng.choice(["x", "y", "z"], len(a)))
    for level in (0.0, 0.05, 0.1, 0.2, 0.5, 1.0):
        got, _ = pad.bpcer_at_apcer(b, a, level, species=sp)
        assert got == pytest.approx(_brute(b, a, sp, level_apcer=level), abs=1e-12)
        pooled, _ = pad.bpcer_at_apcer(b, a, level)
        assert pooled == pytest.approx(_brute(b, a, ["one"] * len(a), level_apcer=level))
        assert pooled <= got + 1e-12  # the max-species constraint is the stricter one
        got_a, _ = pad.apcer_at_bpcer(b, a, level)
        assert got_a == pytest.approx(_brute(b, a, sp, level_bpcer=level), abs=1e-12)


def test_infinite_scores_give_the_d_eer_of_any_finite_scores_in_the_same_order():
    # the old curve stopped at t=+inf with APCER .5, BPCER 2/3 and extrapolated to 2/3;
    # with the end point (1, 0) the crossing is .5 + .5 / 7
    bf, at = [np.inf, np.inf, 0.0], [np.inf, 1.0]
    eer, t = pad.d_eer(bf, at)
    assert eer == pytest.approx(0.5 + 0.5 / 7, abs=1e-12) and t == np.inf
    assert pad.d_eer([2.0, 2.0, 0.0], [2.0, 1.0]) == (pytest.approx(eer), 2.0)
    assert pad.d_eer([np.inf], [np.inf])[0] == pytest.approx(0.5)  # was 0
    assert pad.d_eer([-np.inf, 0.0], [1.0, np.inf]) == (0.0, 1.0)
    c = pad.det_curve(bf, at)
    assert c.apcer[-1] == 1.0 and c.bpcer[-1] == 0.0 and c.thresholds[-1] == np.inf
    rng = np.random.default_rng(7)
    for _ in range(30):
        b = rng.normal(0, 1, rng.integers(2, 30))
        a = rng.normal(1, 1, rng.integers(2, 30))
        b[rng.random(b.size) < 0.2] = np.inf
        a[rng.random(a.size) < 0.2] = -np.inf
        a[rng.random(a.size) < 0.2] = np.inf
        finite = np.concatenate([b, a])
        finite = finite[np.isfinite(finite)]
        hi, lo = (finite.max() + 1, finite.min() - 1) if finite.size else (1.0, -1.0)

        def fin(x, hi=hi, lo=lo):
            return np.where(np.isposinf(x), hi, np.where(np.isneginf(x), lo, x))
        e, t = pad.d_eer(b, a)
        e_ref, t_ref = pad.d_eer(fin(b), fin(a))
        assert e == pytest.approx(e_ref, abs=1e-12)
        assert (t == np.inf) if t_ref in (hi, np.inf) else (t == -np.inf if t_ref == lo else t == t_ref)
        for level in (0.05, 0.2):
            assert pad.bpcer_at_apcer(b, a, level)[0] == pad.bpcer_at_apcer(fin(b), fin(a), level)[0]
            assert pad.apcer_at_bpcer(b, a, level)[0] == pad.apcer_at_bpcer(fin(b), fin(a), level)[0]


def test_resolution_note():
    assert pad.resolution_note(100, 0.01, "BPCER@APCER=1%", "attacks") is None
    note = pad.resolution_note(99, 0.01, "BPCER@APCER=1%", "attacks")
    assert note == ("BPCER@APCER at 1%: only 99 attacks; a level x needs at least 1/x (100 for "
                    "1%), so this level cannot be resolved: APCER moves in steps of 1.01% and "
                    "the figure is taken at APCER = 0.")
    assert pad.resolution_note(10, 0.1, "APCER@BPCER", "y") is None
    note = pad.resolution_note(8, (0.1, 0.01, 0.2), "APCER@BPCER", "bona fide presentations")
    assert note.startswith("APCER@BPCER at 10%, 1%: only 8 bona fide presentations; a level x "
                           "needs at least 1/x (10 for 10%, 100 for 1%), so these levels")
    assert note.endswith("BPCER moves in steps of 12.5% and the figure is taken at BPCER = 0.")


def test_d_eer_point_and_rule():
    dp = pad.d_eer_point(BF, AT)
    assert dp.eer == pytest.approx(0.2) and dp.threshold == 0.4
    assert (dp.apcer.k, dp.apcer.n, dp.bpcer.k, dp.bpcer.n) == (1, 5, 1, 4)
    assert "straight segment between the two consecutive DET operating points" in dp.rule


def test_summary_intervals_labels_and_notes():
    from morphlab.metrics.intervals import wilson_interval

    s = pad.pad_summary(BF, AT, species=SP, threshold=0.65)
    iv = s["intervals"]
    # the earlier keys keep their meaning/type; the BPCER@APCER headline is the ISO figure
    assert s["BPCER@APCER basis"] == "max APCER over species"
    assert s["BPCER@APCER=20%"] == 0.25 and s["BPCER@APCER=20% (pooled)"] == 0.0
    assert s["thresholds"]["BPCER@APCER=20%"] == 0.35
    assert iv["BPCER@APCER=20%"]["k"] == 1 and iv["BPCER@APCER=20%"]["n"] == 4
    assert iv["BPCER@APCER=20%"]["ci95"] == pytest.approx(list(wilson_interval(1, 4)))
    assert s["APCER@BPCER=10%"] == 0.2 and iv["APCER@BPCER=10%"]["n"] == 5
    # at t = 0.5: complete 1 of 3 below, spliced 0 of 2 → max 1/3 (complete)
    assert s["max APCER@BPCER=10%"] == pytest.approx(1 / 3)
    assert iv["max APCER@BPCER=10%"]["species"] == "landmark/complete"
    assert (iv["APCER"]["k"], iv["APCER"]["n"], iv["BPCER"]["k"]) == (3, 5, 0)
    assert iv["max APCER"] == {**iv["APCER per species"]["landmark/spliced"],
                               "species": "landmark/spliced"}
    assert (s["D-EER APCER"], s["D-EER BPCER"]) == (0.2, 0.25)
    assert iv["D-EER APCER"]["k"] == 1 and iv["D-EER BPCER"]["n"] == 4
    assert s["D-EER rule"] == pad.D_EER_RULE
    # every float rate at the top level has an interval
    rate_keys = [k for k, v in s.items() if isinstance(v, float) and "threshold" not in k
                 and k != "D-EER"]
    assert set(rate_keys) <= set(iv), set(rate_keys) - set(iv)
    # 2 spliced attacks cannot resolve APCER 20 % (needs 5); 4 bona fide cannot resolve 10 %
    assert s["notes"][0].startswith("BPCER@APCER at 1%, 5%, 10%, 20%: only 2 attacks of the "
                                    "smallest species (landmark/spliced)")
    assert s["notes"][1].startswith("APCER@BPCER at 10%, 1%: only 4 bona fide presentations")
    assert len(s["notes"]) == 2
    assert s["per species"]["landmark/complete"]["notes"][0].startswith(
        "BPCER@APCER at 1%, 5%, 10%, 20%: only 3 landmark/complete attacks")
    big = pad.pad_summary(np.arange(99.0), np.arange(100.0) + 50)  # 100 attacks resolve 1 %
    assert big["notes"] == [pad.resolution_note(99, 0.01, "APCER@BPCER",
                                                "bona fide presentations")]
    per = s["per species"]["landmark/spliced"]
    assert per["intervals"]["BPCER@APCER=20%"]["n"] == 4 and "APCER@BPCER=1%" in per
    # one species: headline = pooled, no "(pooled)" duplicate
    one = pad.pad_summary(BF, AT)
    assert one["BPCER@APCER basis"] == "pooled" and "BPCER@APCER=20% (pooled)" not in one
    assert one["BPCER@APCER=20%"] == 0.0
    import json
    json.dumps(s)  # JSON-ready
