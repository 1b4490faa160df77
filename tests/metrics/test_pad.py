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
