"""Binomial intervals: textbook values, exact bounds, monotonicity, n = 0, the Rate helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from morphlab.metrics.intervals import (
    clopper_pearson_interval,
    interval,
    rate,
    rate_of,
    wilson_interval,
)


def test_wilson_textbook_value():
    # k=5, n=12 (p = 0.417): the textbook Wilson 95 % interval [0.193, 0.680]
    low, high = wilson_interval(5, 12)
    assert (round(low, 3), round(high, 3)) == (0.193, 0.680)
    # closed form with z = 1.959964
    z, p, n = 1.959963984540054, 5 / 12, 12
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (low, high) == pytest.approx((c - h, c + h), abs=1e-12)


def test_clopper_pearson_exact_bounds():
    low, high = clopper_pearson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(1 - 0.025 ** (1 / 10), abs=1e-12)
    low, high = clopper_pearson_interval(10, 10)
    assert high == 1.0 and low == pytest.approx(0.025 ** (1 / 10), abs=1e-12)
    # the exact interval contains Wilson's at the ends (it is the conservative one)
    assert clopper_pearson_interval(1, 20)[1] >= wilson_interval(1, 20)[1]


@pytest.mark.parametrize("fn", [wilson_interval, clopper_pearson_interval])
def test_monotone_and_within_unit_interval(fn):
    n = 30
    lows, highs = zip(*(fn(k, n) for k in range(n + 1)))
    assert all(np.diff(lows) > 0) and all(np.diff(highs) > 0)
    for k, (lo, hi) in enumerate(zip(lows, highs)):
        assert 0.0 <= lo <= k / n <= hi <= 1.0
    # more trials at the same proportion → a narrower interval
    widths = [np.subtract(*fn(n // 3, n)[::-1]) for n in (9, 30, 300, 3000)]
    assert all(np.diff(widths) < 0)
    # a higher confidence → a wider interval
    assert np.subtract(*fn(3, 10, 0.99)[::-1]) > np.subtract(*fn(3, 10, 0.9)[::-1])


def test_empty_sample_is_nan():
    for fn in (wilson_interval, clopper_pearson_interval):
        assert all(math.isnan(x) for x in fn(0, 0))
    r = rate(0, 0)
    assert math.isnan(r.rate) and r.format() == "n/a (0/0)"
    assert r.to_dict() == {"k": 0, "n": 0, "rate": None, "ci95": [None, None],
                           "ci_method": "wilson"}


def test_rate_helpers_and_errors():
    r = rate(5, 12)
    assert (r.k, r.n, r.rate) == (5, 12, 5 / 12)
    assert r.format() == "41.7 % [19.3, 68.0] (5/12)"
    assert r.to_dict()["ci95"] == pytest.approx([0.193, 0.680], abs=5e-4)
    assert rate(5.0, 12.0).k == 5
    assert rate_of([True, False, True, False]).rate == 0.5
    assert interval(0, 10, "clopper-pearson") == clopper_pearson_interval(0, 10)
    assert rate(1, 4, confidence=0.9).to_dict().keys() >= {"ci0.9"}
    for bad in [(5, 4), (-1, 4)]:
        with pytest.raises(ValueError, match="0 <= k <= n"):
            wilson_interval(*bad)
    with pytest.raises(ValueError, match="integer counts"):
        rate(1.5, 4)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 4, 1.0)
    with pytest.raises(ValueError, match="unknown interval method"):
        interval(1, 4, "wald")


def test_wilson_coverage_on_random_data():
    """Independent check: the simulated coverage of the 95 % interval is near 95 %."""
    rng = np.random.default_rng(0)
    p, n = 0.1, 80
    ks = rng.binomial(n, p, 4000)
    cover = np.mean([lo <= p <= hi for lo, hi in (wilson_interval(int(k), n) for k in ks)])
    assert 0.93 <= cover <= 0.97
