"""Confidence intervals for error rates (binomial proportions).

Every rate a morphlab report shows carries its sample size and a 95 % interval. The
default is the Wilson score interval (good coverage at small n and near 0 or 1, never
outside [0, 1]); the exact Clopper–Pearson interval is offered for evaluators who must
quote a conservative one.

Both are pure functions of the count ``k`` of events (errors, accepted morphs, …) among
``n`` trials. ``n == 0`` gives an undefined rate: ``rate`` and both bounds are ``nan``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

Method = Literal["wilson", "clopper-pearson"]
#: Default interval method of every report.
DEFAULT_METHOD: Method = "wilson"


def _check(k: int, n: int, confidence: float) -> None:
    if not (0 < confidence < 1) or not math.isfinite(confidence):
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the proportion ``k / n``.

    Returns:
        ``(low, high)`` with ``0 <= low <= k/n <= high <= 1``; ``(nan, nan)`` when n == 0.
    """
    _check(k, n, confidence)
    if n == 0:
        return (math.nan, math.nan)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    if k == 0:
        low = 0.0
    if k == n:
        high = 1.0
    return (low, high)


def clopper_pearson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) interval of ``k / n`` from the beta distribution.

    Returns:
        ``(low, high)``; ``(nan, nan)`` when n == 0.
    """
    _check(k, n, confidence)
    if n == 0:
        return (math.nan, math.nan)
    a = 1 - confidence
    low = 0.0 if k == 0 else float(stats.beta.ppf(a / 2, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1 - a / 2, k + 1, n - k))
    return (low, high)


def interval(k: int, n: int, method: Method = DEFAULT_METHOD,
             confidence: float = 0.95) -> tuple[float, float]:
    """The interval of ``k / n`` by ``method`` (``"wilson"`` or ``"clopper-pearson"``)."""
    if method == "wilson":
        return wilson_interval(k, n, confidence)
    if method == "clopper-pearson":
        return clopper_pearson_interval(k, n, confidence)
    raise ValueError(f"unknown interval method {method!r}: use 'wilson' or 'clopper-pearson'")


@dataclass(frozen=True)
class Rate:
    """A rate with its sample size and confidence interval.

    Attributes:
        k: number of events (e.g. accepted morphs).
        n: number of trials (the denominator).
        rate: ``k / n`` (``nan`` when n == 0).
        low, high: interval bounds.
        method, confidence: how the interval was computed.
    """

    k: int
    n: int
    rate: float
    low: float
    high: float
    method: str = DEFAULT_METHOD
    confidence: float = 0.95

    def to_dict(self) -> dict:
        """JSON form: ``{"k", "n", "rate", "ci95": [low, high], "ci_method"}`` (nan → None)."""
        def clean(x: float):
            return None if x is None or (isinstance(x, float) and math.isnan(x)) else x

        return {
            "k": self.k, "n": self.n, "rate": clean(self.rate),
            "ci95" if abs(self.confidence - 0.95) < 1e-12 else f"ci{self.confidence:g}":
                [clean(self.low), clean(self.high)],
            "ci_method": self.method,
        }

    def format(self, digits: int = 1) -> str:
        """Human form, e.g. ``"41.7 % [19.3, 68.0] (5/12)"``; ``"n/a (0/0)"`` when n == 0."""
        if self.n == 0:
            return "n/a (0/0)"
        f = f"{{:.{digits}f}}"
        return (f"{f.format(100 * self.rate)} % [{f.format(100 * self.low)}, "
                f"{f.format(100 * self.high)}] ({self.k}/{self.n})")


def rate(k, n, method: Method = DEFAULT_METHOD, confidence: float = 0.95) -> Rate:
    """A :class:`Rate` for ``k`` events among ``n`` trials (integers or integer-valued)."""
    k_i, n_i = int(round(float(k))), int(round(float(n)))
    if abs(k_i - float(k)) > 1e-9 or abs(n_i - float(n)) > 1e-9:
        raise ValueError(f"rate needs integer counts, got k={k!r}, n={n!r}")
    low, high = interval(k_i, n_i, method, confidence)
    return Rate(k_i, n_i, k_i / n_i if n_i else math.nan, low, high, method, confidence)


def rate_of(mask, method: Method = DEFAULT_METHOD, confidence: float = 0.95) -> Rate:
    """A :class:`Rate` for the fraction of True values in a boolean array."""
    m = np.asarray(mask, dtype=bool).ravel()
    return rate(int(m.sum()), int(m.size), method, confidence)
