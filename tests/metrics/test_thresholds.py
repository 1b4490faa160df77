"""Thresholds at a target FMR: exact hand cases, ties, minimality on random data, the rule of
30, intervals, non-finite input, native-scale thresholds and impostor pairing."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from morphlab.metrics.intervals import wilson_interval
from morphlab.metrics.thresholds import (
    ThresholdSpec,
    calibrate,
    count_subjects,
    fixed,
    fmr,
    fmr_label,
    fnmr,
    impostor_mask,
    min_impostors,
    parse_threshold_spec,
    threshold_at_fmr,
    to_similarity_threshold,
)


def test_hand_cases():
    imp = np.arange(10) / 10.0  # 0.0 … 0.9
    t = threshold_at_fmr(imp, 0.1)  # one impostor may pass: the 0.9
    assert 0.8 < t <= np.nextafter(0.8, 1)
    assert fmr(imp, t) == 0.1
    t0 = threshold_at_fmr(imp, 0.05)  # none may pass
    assert fmr(imp, t0) == 0.0 and t0 == np.nextafter(0.9, 1)
    assert fmr(imp, threshold_at_fmr(imp, 0.999)) == 0.9  # 9 of 10 may pass
    assert fmr([0.5], 0.5) == 1.0  # tie: accepted
    assert fnmr([0.5], 0.5) == 0.0
    assert fnmr([0.2, 0.4, 0.6, 0.8], 0.5) == 0.5


def test_ties_are_never_split():
    imp = [0.5, 0.5, 0.1, 0.2]
    t = threshold_at_fmr(imp, 0.25)  # one may pass, but the two 0.5 are tied
    assert fmr(imp, t) == 0.0
    with pytest.warns(UserWarning, match="only 4 impostor"):
        op = calibrate([0.4, 0.6, 0.9], imp, 0.25)
    assert op.threshold == t and op.fmr == 0.0 and op.fnmr == pytest.approx(1 / 3)
    assert (op.n_genuine, op.n_impostor, op.policy) == (3, 4, "fmr")
    assert (op.n_false_matches, op.n_false_non_matches) == (0, 1)


def test_minimal_threshold_on_random_data():
    rng = np.random.default_rng(3)
    for _ in range(50):
        imp = np.round(rng.normal(size=rng.integers(5, 400)), rng.integers(1, 4))  # with ties
        target = float(rng.choice([0.001, 0.01, 0.05, 0.2, 0.5]))
        t = threshold_at_fmr(imp, target)
        assert fmr(imp, t) <= target
        # any lower threshold that changes the decision exceeds the target
        lower = imp[imp < t]
        if lower.size:
            assert fmr(imp, lower.max()) > target
        # brute force: the smallest distinct candidate with FMR <= target
        cands = np.concatenate([np.unique(imp), [np.inf]])
        ok = [c for c in cands if np.mean(imp >= c) <= target]
        assert np.mean(imp >= t) == np.mean(imp >= min(ok))


def test_rule_of_30_warning_and_record():
    assert min_impostors(0.001) == 30000 and min_impostors(0.01) == 3000
    assert min_impostors(0.3) == 100 and min_impostors(0.07) == 429  # ceil(428.57)
    with pytest.warns(UserWarning, match=r"only 100 impostor comparisons from 12 subjects.*30000"):
        op = calibrate([0.9], np.linspace(0, 1, 100), 0.001, impostor_subjects=12)
    assert op.too_few_impostors and op.min_impostors == 30000 and op.impostor_subjects == 12
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        op = calibrate(None, np.linspace(0, 1, 3000), 0.01)
    assert not op.too_few_impostors and op.min_impostors == 3000
    assert op.fnmr is None and op.fnmr_rate is None and op.n_genuine == 0
    with pytest.warns(UserWarning, match="only 2999 impostor comparisons to calibrate"):
        assert calibrate(None, np.linspace(0, 1, 2999), 0.01).too_few_impostors
    with pytest.raises(ValueError, match="no impostor comparisons"):
        calibrate([0.9], [], 0.001)


def test_count_subjects():
    assert count_subjects(None) is None and count_subjects(7) == 7
    assert count_subjects(["a", "b", "a"]) == 2
    assert count_subjects([("a", "b"), ("b", "c"), ("a", "c")]) == 3
    with pytest.raises(ValueError):
        count_subjects(-1)


def test_fmr_label_and_rates_with_intervals():
    imp = np.linspace(0.0, 0.5, 380)
    gen = np.array([0.3, 0.6, 0.7, 0.8, 0.9])
    with pytest.warns(UserWarning):
        op = calibrate(gen, imp, 0.001, impostor_subjects=[("s1", "s2"), ("s2", "s3")])
    assert op.threshold > imp.max() and op.fmr == 0.0
    assert op.fmr_label == "≤ 1/380 (0 of 380 accepted)"
    assert op.impostor_subjects == 3
    assert fmr_label(1, 380) == "0.263 % (1 of 380 accepted)"
    fr, fn = op.fmr_rate, op.fnmr_rate
    assert (fr.k, fr.n, fr.rate, fr.low) == (0, 380, 0.0, 0.0)
    assert fr.high == pytest.approx(wilson_interval(0, 380)[1])
    assert (fn.k, fn.n) == (1, 5) and fn.rate == pytest.approx(0.2)
    assert (fn.low, fn.high) == pytest.approx(wilson_interval(1, 5))
    d = op.as_dict()
    assert d["fmr_rate"]["k"] == 0 and d["fmr_rate"]["n"] == 380
    assert d["fnmr_rate"]["ci95"] == pytest.approx(list(wilson_interval(1, 5)))
    assert d["too_few_impostors"] is True and d["min_impostors"] == 30000
    assert d["fmr_label"].startswith("≤ 1/380")


def test_non_finite_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"impostor scores: 3 of 5 score\(s\) are not finite "
                                         r"\(1 NaN, 1 \+inf, 1 -inf\)"):
        threshold_at_fmr([0.1, np.nan, np.inf, -np.inf, 0.2], 0.1)
    with pytest.raises(ValueError, match=r"dlib: genuine scores: 1 of 2 .*\(1 NaN\)"):
        calibrate([0.9, np.nan], [0.1, 0.2], 0.1, what="dlib")
    with pytest.raises(ValueError, match=r"sys: impostor scores: .*\(1 \+inf\)"):
        calibrate([0.9], [0.1, np.inf], 0.1, what="sys")
    for bad in (1.0, 0.0, -0.1, 1.5, math.nan, math.inf):
        with pytest.raises(ValueError, match="target FMR must lie strictly between 0 and 1"):
            calibrate([0.9], np.linspace(0, 1, 50), bad)
        with pytest.raises(ValueError, match="strictly between"):
            threshold_at_fmr([0.1, 0.2], bad)
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="fixed threshold must be a finite number"):
            fixed(bad, [0.5], [0.1])
        with pytest.raises(ValueError, match="finite"):
            fmr([0.1, 0.2], bad)
    with pytest.raises(ValueError, match="NaN"):
        fmr([0.1, np.nan], 0.5)
    with pytest.raises(ValueError, match="-inf"):
        fixed(0.4, genuine_scores=[-np.inf, 0.5])


def test_fixed_threshold_reports_rates():
    op = fixed(0.4, genuine_scores=[0.3, 0.5, 0.7, 0.9], impostor_scores=[0.1, 0.45])
    assert (op.fnmr, op.fmr, op.policy, op.target_fmr) == (0.25, 0.5, "fixed", None)
    assert (op.n_false_matches, op.n_false_non_matches) == (1, 1)
    assert op.fmr_label == "50 % (1 of 2 accepted)" and op.min_impostors is None
    empty = fixed(0.4)
    assert empty.fmr is None and empty.fmr_rate is None and empty.fmr_label is None
    assert empty.as_dict()["fmr_rate"] is None


def test_rates_agree_with_direct_counts_on_random_data():
    rng = np.random.default_rng(5)
    for _ in range(20):
        gen = np.round(rng.normal(1.0, 0.5, rng.integers(1, 60)), 2)
        imp = np.round(rng.normal(0.0, 0.5, rng.integers(1, 300)), 2)
        target = float(rng.choice([0.01, 0.1, 0.3]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            op = calibrate(gen, imp, target)
        t = op.threshold
        assert op.n_false_matches == sum(1 for s in imp if s >= t)
        assert op.n_false_non_matches == sum(1 for s in gen if s < t)
        assert op.fmr_rate.low <= op.fmr <= op.fmr_rate.high
        assert op.fnmr_rate.low <= op.fnmr <= op.fnmr_rate.high
        assert op.too_few_impostors == (imp.size * target < 30 - 1e-9)


def test_parse_threshold_spec():
    assert parse_threshold_spec("dlib-resnet=0.4") == ThresholdSpec("dlib-resnet", "similarity", 0.4)
    assert parse_threshold_spec("dlib-resnet=similarity:0.4").value == 0.4
    assert parse_threshold_spec("dlib-resnet=distance:0.6") == ThresholdSpec(
        "dlib-resnet", "distance", 0.6)
    assert parse_threshold_spec("arcface-onnx=published") == ThresholdSpec(
        "arcface-onnx", "published", None)
    for bad, msg in [("dlib", "expected SYSTEM=VALUE"), ("=0.4", "expected"),
                     ("dlib=", "expected"), ("dlib=cosine:0.3", "unknown scale 'cosine'"),
                     ("dlib=abc", "'abc' is not a number"), ("dlib=nan", "finite"),
                     ("dlib=distance:inf", "finite")]:
        with pytest.raises(ValueError, match=msg):
            parse_threshold_spec(bad)


def test_distance_threshold_conversion():
    # dlib-resnet: similarity = 1 - distance
    s = to_similarity_threshold(0.6, "distance", (1.0, -1.0))
    assert s == pytest.approx(0.4)
    assert to_similarity_threshold(0.6, "distance", lambda d: 1.0 - d) == pytest.approx(0.4)
    assert to_similarity_threshold(0.4, "similarity") == 0.4
    # accept similarity >= s  <=>  distance <= 0.6 (exactly representable example: 0.5)
    s = to_similarity_threshold(0.5, "distance", (1.0, -1.0))
    dist = np.array([0.25, 0.5, 0.75])
    np.testing.assert_array_equal((1.0 - dist) >= s, dist <= 0.5)
    # an affine conversion with another scale: similarity = 2 - 4 d
    rng = np.random.default_rng(0)
    d = rng.uniform(0, 1, 200)
    t = to_similarity_threshold(0.3, "distance", (2.0, -4.0))
    np.testing.assert_array_equal((2 - 4 * d) >= t, d <= 0.3)
    with pytest.raises(ValueError, match="no declared distance conversion"):
        to_similarity_threshold(0.6, "distance", None)
    with pytest.raises(ValueError, match="needs b < 0"):
        to_similarity_threshold(0.6, "distance", (0.0, 1.0))
    with pytest.raises(ValueError, match="not strictly decreasing"):
        to_similarity_threshold(0.6, "distance", lambda x: x)
    with pytest.raises(ValueError, match="finite"):
        to_similarity_threshold(math.nan, "similarity")
    with pytest.raises(ValueError, match="unknown threshold scale"):
        to_similarity_threshold(0.6, "cosine")


def test_impostor_mask_hand_case():
    a = ["s1", "s1", "s2", "s3", "s1"]
    b = ["s2", "s3", "s3", "s3", "s4"]
    gender = {"s1": "F", "s2": "f ", "s3": "M", "s4": "M"}
    np.testing.assert_array_equal(impostor_mask(a, b), [True, True, True, False, True])
    np.testing.assert_array_equal(impostor_mask(a, b, gender, "same-gender"),
                                  [True, False, False, False, False])
    with pytest.raises(ValueError, match=r"1 subject\(s\) have no recorded gender \(e.g. s4\)"):
        impostor_mask(a, b, {"s1": "F", "s2": "F", "s3": "M", "s4": ""}, "same-gender")
    with pytest.raises(ValueError, match="unknown impostor pairing"):
        impostor_mask(a, b, gender, "cross-gender")
    with pytest.raises(ValueError, match="got 2 first and 1 second"):
        impostor_mask(["a", "b"], ["c"])


def test_impostor_mask_agrees_with_loop_on_random_data():
    rng = np.random.default_rng(2)
    ids = [f"s{i}" for i in range(12)]
    gender = {s: rng.choice(["F", "M"]) for s in ids}
    a = rng.choice(ids, 200)
    b = rng.choice(ids, 200)
    ref = [x != y and gender[x] == gender[y] for x, y in zip(a, b)]
    np.testing.assert_array_equal(impostor_mask(a, b, gender, "same-gender"), ref)
    np.testing.assert_array_equal(impostor_mask(a, b, gender, "all"), a != b)
