"""Confidence intervals shared by the safety metrics.

Thin wrappers over scipy so every module reports intervals the same way and handles the
degenerate cases (no data, one observation) with NaN instead of an exception: a monitoring
window with zero events is normal, not an error.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; ``(nan, nan)`` when ``n == 0``.

    Wilson rather than the normal ("Wald") interval because toxicity rates sit near 0, where
    Wald collapses to a zero-width interval and undercovers badly.
    """
    if n <= 0:
        return (math.nan, math.nan)
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n]; got successes={successes}, n={n}")
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


def mean_interval(values: ArrayLike, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval for a mean; ``(nan, nan)`` with fewer than two finite values."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return (math.nan, math.nan)
    mean = float(x.mean())
    sem = float(x.std(ddof=1)) / math.sqrt(x.size)
    if sem == 0.0:
        return (mean, mean)
    half = float(stats.t.ppf(0.5 + confidence / 2, df=x.size - 1)) * sem
    return (mean - half, mean + half)
