"""Paired intervals for the promotion gates: champion and challenger scored on the same prompts.

Two estimates, both of "how much worse is the challenger" (challenger minus champion):

- ``paired_rate_difference``: difference of two proportions measured on the same items (toxic answer or
  not, per held-out prompt), with Newcombe's hybrid score interval for paired data (method 10 of Newcombe
  1998, "Improved confidence intervals for the difference between binomial proportions based on paired
  data"). It is built from Wilson intervals, so it stays honest with zero or few events: 0 toxic answers
  out of 6 gives an upper bound near 0.4, not the 0 a bootstrap or a Wald interval would claim.
- ``paired_bootstrap_difference``: any statistic of a (units x ...) array per model, bootstrapped by
  resampling units (probe templates) with the same draw for both models, so what the two models share
  (a template's tone) cancels out.

``non_inferiority`` turns an interval into pass / fail / inconclusive against a tolerance, and
``units_to_settle`` says how many units would settle an inconclusive result if the observed effect held.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

Verdict = Literal["passed", "failed", "inconclusive"]


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    n: int
    method: str


def _z(confidence: float) -> float:
    """Two-sided confidence -> z; a one-sided bound at level c is the matching side of a (2c - 1) interval."""
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0.5, 1), got {confidence}")
    from scipy import stats  # on use: SciPy takes seconds to import, and every CLI start reaches this module

    return float(stats.norm.ppf(0.5 + confidence / 2.0))


def wilson(successes: float, n: float, z: float) -> tuple[float, float]:
    """Wilson score interval; accepts fractional counts (used to project the interval to a larger n)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def _newcombe_paired(n11: float, n10: float, n01: float, n00: float, z: float) -> tuple[float, float, float]:
    """(difference, low, high) of p_challenger - p_champion; n10 = challenger only, n01 = champion only."""
    n = n11 + n10 + n01 + n00
    p_b, p_a = (n11 + n10) / n, (n11 + n01) / n
    l_b, u_b = wilson(n11 + n10, n, z)
    l_a, u_a = wilson(n11 + n01, n, z)
    denom = (n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00)
    phi = (n11 * n00 - n10 * n01) / math.sqrt(denom) if denom > 0 else 0.0
    d = p_b - p_a
    low = d - math.sqrt(max(0.0, (p_b - l_b) ** 2 - 2 * phi * (p_b - l_b) * (u_a - p_a) + (u_a - p_a) ** 2))
    high = d + math.sqrt(max(0.0, (u_b - p_b) ** 2 - 2 * phi * (u_b - p_b) * (p_a - l_a) + (p_a - l_a) ** 2))
    return d, max(-1.0, low), min(1.0, high)


def paired_rate_difference(champion: np.ndarray, challenger: np.ndarray, *, confidence: float = 0.9) -> Interval:
    """Challenger minus champion rate of a 0/1 outcome on the same items; ``confidence`` is two-sided
    (0.9 gives one-sided 95% bounds, the usual level of a non-inferiority test)."""
    a = np.asarray(champion, dtype=bool).reshape(-1)
    b = np.asarray(challenger, dtype=bool).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes need the same items: {a.size} champion vs {b.size} challenger")
    if a.size == 0:
        raise ValueError("no paired outcomes")
    counts = (float(np.sum(a & b)), float(np.sum(b & ~a)), float(np.sum(a & ~b)), float(np.sum(~a & ~b)))
    d, low, high = _newcombe_paired(*counts, _z(confidence))
    return Interval(d, low, high, int(a.size), "newcombe_paired_score")


def unpaired_rate_difference(champion_rate: float, n_champion: int, challenger_rate: float, n_challenger: int,
                             *, confidence: float = 0.9) -> Interval:
    """Newcombe's hybrid score interval for two independent proportions (when only rates and counts are known)."""
    if n_champion < 1 or n_challenger < 1:
        raise ValueError("both models need at least one scored answer")
    z = _z(confidence)
    l_a, u_a = wilson(champion_rate * n_champion, n_champion, z)
    l_b, u_b = wilson(challenger_rate * n_challenger, n_challenger, z)
    d = challenger_rate - champion_rate
    low = d - math.sqrt((challenger_rate - l_b) ** 2 + (u_a - champion_rate) ** 2)
    high = d + math.sqrt((u_b - challenger_rate) ** 2 + (champion_rate - l_a) ** 2)
    return Interval(d, low, high, min(n_champion, n_challenger), "newcombe_unpaired_score")


def paired_bootstrap_difference(
    champion: np.ndarray, challenger: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray], *,
    confidence: float = 0.9, n_bootstrap: int = 2000, seed: int = 0,
) -> Interval:
    """statistic(challenger) - statistic(champion), percentile interval from resampling rows (units) jointly.

    ``statistic`` maps an array of shape (..., units, k) to shape (...): it is applied to all resamples at once.
    """
    a, b = np.asarray(champion, dtype=np.float64), np.asarray(challenger, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired arrays need the same shape: {a.shape} vs {b.shape}")
    n = a.shape[0]
    if n < 2:
        raise ValueError("a bootstrap needs at least two units")
    d = float(statistic(b) - statistic(a))
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, n, size=(n_bootstrap, n))
    boot = np.asarray(statistic(b[rows]) - statistic(a[rows]))
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot, [tail, 1.0 - tail])
    return Interval(d, float(low), float(high), int(n), "paired_bootstrap_units")


def non_inferiority(interval: Interval, tolerance: float) -> Verdict:
    """Pass when the upper bound of the increase is under the tolerance, fail when the lower bound is over it."""
    if interval.high < tolerance or (interval.high == tolerance == 0.0):
        return "passed"
    if interval.low > tolerance:
        return "failed"
    return "inconclusive"


def units_to_settle(interval: Interval, tolerance: float, *, cap: int = 100_000) -> int | None:
    """How many units would settle the test if the estimate held and the interval shrank like 1/sqrt(n).

    None when the estimate sits on the tolerance (no sample size settles it) or beyond ``cap``.
    """
    if interval.estimate == tolerance or interval.n < 1:
        return None
    if interval.estimate < tolerance:
        half = interval.high - interval.estimate
        room = tolerance - interval.estimate
    else:
        half = interval.estimate - interval.low
        room = interval.estimate - tolerance
    if half <= 0:
        return interval.n
    needed = math.ceil(interval.n * (half / room) ** 2)
    return needed if needed <= cap else None


def rate_units_to_settle(champion: np.ndarray, challenger: np.ndarray, tolerance: float, *,
                         confidence: float = 0.9, cap: int = 100_000) -> int | None:
    """Items needed for a paired rate test, projecting the observed 2x2 table (Wilson bounds shrink like 1/n
    near zero, not 1/sqrt(n), so this searches rather than scales)."""
    a = np.asarray(champion, dtype=bool)
    b = np.asarray(challenger, dtype=bool)
    n = a.size
    n11, n10, n01, n00 = (float(np.sum(a & b)) / n, float(np.sum(b & ~a)) / n, float(np.sum(a & ~b)) / n,
                          float(np.sum(~a & ~b)) / n)
    z = _z(confidence)
    m = n
    while m <= cap:
        _, low, high = _newcombe_paired(n11 * m, n10 * m, n01 * m, n00 * m, z)
        if high < tolerance or low > tolerance:
            return m
        m = max(m + 1, math.ceil(m * 1.1))
    return None
