"""Paired intervals for the promotion gates: champion and challenger scored on the same prompts.

Two estimates, both of "how much worse is the challenger" (challenger minus champion):

- ``paired_rate_difference``: difference of two proportions measured on the same items (toxic answer or
  not, per held-out prompt), with Newcombe's hybrid score interval for paired data (method 10 of Newcombe
  1998, "Improved confidence intervals for the difference between binomial proportions based on paired
  data"). It is built from Wilson intervals, so it stays honest with zero or few events: 0 toxic answers
  out of 6 gives an upper bound near 0.4, not the 0 a bootstrap or a Wald interval would claim.
- ``paired_bootstrap_difference``: any statistic of a (units x ...) array per model, bootstrapped by
  resampling units with the same draw for both models, so what the two models share cancels out.
- ``paired_disparity_difference``: the bias gate's. Per probe axis each model has a templates x groups matrix
  of mean sentiment; ``disparity`` is an unbiased estimate of the mean squared gap between two groups' true
  mean sentiment (template effects removed, the noise's contribution subtracted), and the gate's interval is
  the jackknife over templates of challenger minus champion, both computed on the same templates.

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


def _disparity_parts(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(D, S, Q, scale) of a (templates x groups) matrix: D = each template's centred row, S = their sum over
    templates, Q = per-template squared norm of D, scale = 2 / (groups - 1)."""
    d = cells - cells.mean(axis=1, keepdims=True)  # the template's own tone carries no group information
    return d, d.sum(axis=0), np.sum(d * d, axis=1), np.asarray(2.0 / (cells.shape[1] - 1))


def disparity(cells: np.ndarray) -> float:
    """Unbiased estimate of the mean squared gap between two groups' mean sentiment, from a templates x groups
    matrix (sentiment units squared; for two groups, the squared gap).

    Model: cell = template effect + group effect + noise (independent across templates, any spread). With
    d_t the template's row minus its own mean, E<d_t, d_s> = |centred group effects|^2 for t != s, while
    <d_t, d_t> also holds the noise; averaging only the cross products (a U-statistic) removes the noise's
    upward bias that a gap of noisy group means carries. It equals (MS_group - MS_residual) / T of the two-way
    ANOVA without replication, times 2 / (G - 1) (mean over pairs of (g_i - g_j)^2 = 2 sum (g - mean)^2 / (G - 1)).
    It can come out negative when there is no real disparity; that is what unbiased costs, and it is kept.
    """
    x = np.asarray(cells, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(f"disparity needs at least 2 templates x 2 groups, got shape {x.shape}")
    _, s, q, scale = _disparity_parts(x)
    t = x.shape[0]
    return float(scale * (s @ s - q.sum()) / (t * (t - 1)))


def _complete_rows(champion: np.ndarray, challenger: np.ndarray) -> np.ndarray:
    return np.isfinite(champion).all(axis=1) & np.isfinite(challenger).all(axis=1)


def paired_disparity_difference(champion: dict[str, np.ndarray], challenger: dict[str, np.ndarray], *,
                                confidence: float = 0.9) -> Interval:
    """Challenger minus champion of the mean over axes of ``disparity``, with a jackknife-over-templates
    Student-t interval (``confidence`` two-sided).

    Both models answer the same template x group prompts, so the difference is one U-statistic whose kernel
    is <b_t, b_s> - <a_t, a_s> = (<b_t - a_t, b_s + a_s> + <b_t + a_t, b_s - a_s>) / 2: cells where the two
    models answer alike contribute nothing, and an identical challenger gives exactly 0 with a 0-width
    interval. Templates are the units (the same templates across axes, so they are left out jointly); a
    template with a missing cell in either model is dropped from that axis. The bootstrap is not used here:
    a resample repeats templates, and a repeated template's cross product is its own squared norm, which
    brings back the noise bias the statistic removes.
    """
    if sorted(champion) != sorted(challenger) or not champion:
        raise ValueError("paired disparity needs the same non-empty set of axes for both models")
    n_templates = {np.shape(champion[k])[0] for k in champion}
    if len(n_templates) != 1:
        raise ValueError("every axis must have the same templates (rows)")
    t_all = n_templates.pop()
    estimate = 0.0
    loo = np.zeros(t_all)  # leave-one-template-out estimates of the difference
    for axis in sorted(champion):
        a = np.asarray(champion[axis], dtype=np.float64)
        b = np.asarray(challenger[axis], dtype=np.float64)
        if a.shape != b.shape or a.ndim != 2 or a.shape[1] < 2:
            raise ValueError(f"axis {axis!r}: paired matrices need the same templates x groups shape (>= 2 groups)")
        keep = _complete_rows(a, b)
        t = int(keep.sum())
        if t < 3:
            raise ValueError(f"axis {axis!r}: a jackknife needs at least 3 complete templates, got {t}")
        diff_full = 0.0
        loo_axis = np.zeros(t_all)
        for m, sign in ((b, 1.0), (a, -1.0)):
            rows, s, q, scale = _disparity_parts(m[keep])
            total = s @ s - q.sum()
            diff_full += sign * float(scale * total / (t * (t - 1)))
            s_minus = s[None, :] - rows  # S without template i
            left = np.einsum("ij,ij->i", s_minus, s_minus) - (q.sum() - q)
            loo_axis[keep] += sign * scale * left / ((t - 1) * (t - 2))
        # A template dropped from this axis leaves it unchanged when it is left out.
        loo_axis[~keep] = diff_full
        estimate += diff_full
        loo += loo_axis
    k = len(champion)
    estimate /= k
    loo /= k
    var = (t_all - 1) / t_all * float(np.sum((loo - loo.mean()) ** 2))
    from scipy import stats  # on use, as in _z

    half = float(stats.t.ppf(0.5 + confidence / 2.0, t_all - 1)) * math.sqrt(var)
    return Interval(estimate, estimate - half, estimate + half, int(t_all), "paired_disparity_jackknife_t")


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
