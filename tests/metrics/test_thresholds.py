"""Thresholds at a target FMR: exact hand cases, ties, minimality on random data, warnings."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from morphlab.metrics.thresholds import calibrate, fixed, fmr, fnmr, threshold_at_fmr


def test_hand_cases():
    imp = np.arange(10) / 10.0  # 0.0 … 0.9
    t = threshold_at_fmr(imp, 0.1)  # one impostor may pass: the 0.9
    assert 0.8 < t <= np.nextafter(0.8, 1)
    assert fmr(imp, t) == 0.1
    t0 = threshold_at_fmr(imp, 0.05)  # none may pass
    assert fmr(imp, t0) == 0.0 and t0 == np.nextafter(0.9, 1)
    assert threshold_at_fmr(imp, 1.0) == -np.inf
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
        assert fmr(imp, t) == fmr(imp, min(ok))


def test_warns_with_too_few_impostors_and_refuses_none():
    with pytest.warns(UserWarning, match="only 100 impostor comparisons"):
        op = calibrate([0.9], np.linspace(0, 1, 100), 0.001)
    assert op.too_few_impostors
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not calibrate(None, np.linspace(0, 1, 1000), 0.01).too_few_impostors
    with pytest.raises(ValueError, match="no impostor comparisons"):
        calibrate([0.9], [], 0.001)
    with pytest.raises(ValueError, match="NaN"):
        fmr([0.1, np.nan], 0.5)


def test_fixed_threshold_reports_rates():
    op = fixed(0.4, genuine_scores=[0.3, 0.5, 0.7, 0.9], impostor_scores=[0.1, 0.45])
    assert (op.fnmr, op.fmr, op.policy, op.target_fmr) == (0.25, 0.5, "fixed", None)
    assert fixed(0.4).fmr is None
