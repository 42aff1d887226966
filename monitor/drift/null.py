"""z-scores and tail p-values against a detector's permutation null, and genomic-control inflation.

A permutation p-value is exact but coarse: with 1,000 permutations it cannot go below 1/1001, and once
several tests of one window share a false-page budget (Benjamini-Hochberg over segments x fields x
methods, `monitor/drift/budget.py`) the smallest threshold is alpha / #tests, often below that floor.
So the calibrated gate works on the *standardised* statistic: z = (observed - null mean) / null sd,
read off the permutation null the detector computed anyway, and turned into a tail probability by a
Pearson type III curve (a shifted gamma) matched to the null's mean, sd and skewness. The kNN count is
asymptotically normal (skew ~ 0, the curve is the normal); the MMD U-statistic's null is a weighted
sum of chi-squares, right-skewed, which the normal tail would make anti-conservative.

`normal_score` maps any such tail p to the standard-normal quantile with the same tail, so every
detector's evidence is on one scale, where "no drift" is N(0, 1) and chi-squared(1) = score². That is
the scale on which the genomic-control inflation is defined (Devlin & Roeder 1999): when real traffic
varies on its own (hour of day, weekday mix), scores of same-traffic comparisons are spread wider than
N(0, 1); `inflation` measures it as median(score²) / median(chi-squared(1)), and `deflated_p` divides a
window's score² by it before the tail is read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import norm, pearson3

CHI2_1_MEDIAN = 0.454936423119572
"""Median of a chi-squared variable with one degree of freedom (= Φ⁻¹(0.75)²)."""

_MIN_P = 1e-300
_MAX_SCORE = 37.0  # ≈ Φ⁻¹(1 - 1e-300)


def null_moments(null: np.ndarray) -> tuple[float, float, float]:
    """Mean, sd and skewness of a permutation null (sd floored so a constant null gives finite z)."""
    x = np.asarray(null, dtype=np.float64)
    mean = float(x.mean())
    sd = float(x.std(ddof=1)) if x.size > 1 else 0.0
    if sd <= 1e-15 * max(1.0, abs(mean)):
        return mean, 0.0, 0.0
    skew = float(np.mean(((x - mean) / sd) ** 3))
    return mean, sd, skew


def z_score(observed: float, mean: float, sd: float) -> float:
    """Standardised statistic; a degenerate null (sd 0) gives 0 when observed equals it, else ±inf-like 40."""
    if sd <= 0.0:
        return 0.0 if abs(observed - mean) <= 1e-12 * max(1.0, abs(mean)) else math.copysign(40.0, observed - mean)
    return (observed - mean) / sd


def tail_p(z: float, skew: float = 0.0) -> float:
    """P(Z >= z) for a standardised Pearson III variable with this skewness (the normal when skew is 0)."""
    p = float(pearson3.sf(z, skew)) if abs(skew) > 1e-6 else float(norm.sf(z))
    return min(1.0, max(p, _MIN_P))


def normal_score(p: float) -> float:
    """The standard-normal quantile with upper tail p: 0 at p = 0.5, 2.33 at p = 0.01 (one-sided)."""
    return float(norm.isf(min(1.0, max(p, _MIN_P))))


def inflation(scores: Sequence[float] | np.ndarray) -> float:
    """Genomic-control λ of normal scores of same-traffic comparisons: median(score²) / median(χ²₁).

    1 means the scores are as spread as sampling noise alone; 2 means real variation doubles the
    chi-square. The median, not the mean, so a single odd block cannot set it.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        raise ValueError("inflation needs at least one score")
    # A degenerate comparison can give ±inf or NaN; clip to the largest finite score (p = 1e-300) / treat as 0.
    s = np.nan_to_num(s, nan=0.0, posinf=_MAX_SCORE, neginf=-_MAX_SCORE)
    return float(np.median(s**2) / CHI2_1_MEDIAN)


def deflated_p(score: float, lam: float) -> float:
    """One-sided p-value of a normal score after dividing its chi-square by λ (λ < 1 is treated as 1)."""
    return float(min(1.0, max(float(norm.sf(score / math.sqrt(max(lam, 1.0)))), _MIN_P)))


def required_score(alpha: float, lam: float) -> float:
    """The normal score a window needs to reach p <= alpha after deflation: √λ · Φ⁻¹(1 - alpha)."""
    return float(math.sqrt(max(lam, 1.0)) * norm.isf(alpha))
