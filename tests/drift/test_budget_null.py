"""The false-page budget (Benjamini-Hochberg, monitor/drift/budget.py) and the null helpers
(monitor/drift/null.py): exact arithmetic, and statistical checks of the error rates they promise."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import gamma, norm

from monitor.drift.budget import bh_adjust, bh_decisions, monthly_false_pages
from monitor.drift.null import (
    CHI2_1_MEDIAN,
    deflated_p,
    inflation,
    normal_score,
    null_moments,
    required_score,
    tail_p,
    z_score,
)
from tests.support.stats import fpr_bound


def test_bh_adjusted_values_by_hand() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005, 0.01, 0.03, 0.04 -> x m/rank: 0.02, 0.02, 0.04, 0.04 (already monotone)
    assert bh_adjust(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert bh_decisions(p, 0.03).tolist() == [True, False, False, True]
    assert bh_adjust([0.5, 0.9]).tolist() == [0.9, 0.9]  # step-up: a later, larger p can lower an earlier one
    assert bh_adjust([]).size == 0 and bh_adjust([1.0]).tolist() == [1.0]
    with pytest.raises(ValueError):
        bh_adjust([1.2])
    with pytest.raises(ValueError):
        bh_decisions([0.1], 0.0)


@pytest.mark.parametrize("correlation", [0.0, 0.6])
def test_bh_keeps_the_chance_that_a_quiet_window_flags_anything_at_alpha(correlation: float) -> None:
    # 4,000 quiet windows of 48 tests each (12 segments x 2 fields x 2 methods), independent or positively
    # correlated (a shared component, like segments overlapping `all`): the share of windows with any flag
    # stays within alpha + 3 binomial sd. Judged one by one at alpha, nearly 4 in 10 windows would flag.
    rng = np.random.default_rng(7)
    windows, tests, alpha = 4000, 48, 0.01
    shared = rng.standard_normal((windows, 1))
    z = np.sqrt(correlation) * shared + np.sqrt(1 - correlation) * rng.standard_normal((windows, tests))
    p = norm.sf(z)
    any_bh = np.mean([bh_decisions(row, alpha).any() for row in p])
    any_raw = np.mean((p <= alpha).any(axis=1))
    assert any_bh <= fpr_bound(alpha, windows), any_bh
    if correlation == 0.0:
        assert any_raw > 0.3


def test_bh_finds_a_real_shift_in_a_few_segments() -> None:
    # 48 tests, 4 with a real shift (score 4.5): BH at 0.01 finds all four in most windows.
    rng = np.random.default_rng(8)
    found = []
    for _ in range(500):
        z = rng.standard_normal(48)
        z[:4] += 4.5
        found.append(bh_decisions(norm.sf(z), 0.01)[:4].mean())
    assert np.mean(found) >= 0.8


def test_monthly_false_pages_bound() -> None:
    assert monthly_false_pages(0.01, 2, 300) == pytest.approx(30 * 288 * 1e-4)
    assert monthly_false_pages(0.01, 1, 3600) == pytest.approx(7.2)
    with pytest.raises(ValueError):
        monthly_false_pages(0.01, 0, 300)


def test_tail_p_is_the_normal_without_skew_and_a_gamma_with_it() -> None:
    assert tail_p(2.0, 0.0) == pytest.approx(norm.sf(2.0))
    # A standardised gamma with shape 4 has skewness 1: the Pearson III tail is exactly its tail.
    k = 4.0
    for x in (1.0, 2.5, 4.0):
        assert tail_p(x, 2 / np.sqrt(k)) == pytest.approx(gamma.sf(k + x * np.sqrt(k), k), rel=1e-6)
    assert normal_score(0.5) == pytest.approx(0.0, abs=1e-12)
    assert normal_score(norm.sf(3.0)) == pytest.approx(3.0)
    assert tail_p(60.0, 0.0) > 0.0  # never exactly 0, so BH and logs stay finite


def test_pearson_tail_from_a_skewed_permutation_null_is_calibrated() -> None:
    # 20,000 draws of a right-skewed statistic (chi-square 3, like an MMD null); the moments of 300 other draws
    # (as from 300 permutations) give z and a Pearson III tail whose rejection rate at 0.01 is close to 0.01.
    rng = np.random.default_rng(9)
    null = rng.chisquare(3, 300)
    mean, sd, skew = null_moments(null)
    draws = rng.chisquare(3, 20_000)
    p = np.array([tail_p(z_score(x, mean, sd), skew) for x in draws])
    assert abs(np.mean(p <= 0.01) - 0.01) < 0.008
    # the normal tail would be anti-conservative here
    assert np.mean(norm.sf((draws - mean) / sd) <= 0.01) > np.mean(p <= 0.01)


def test_inflation_and_deflation() -> None:
    rng = np.random.default_rng(10)
    assert inflation(rng.standard_normal(20_000)) == pytest.approx(1.0, abs=0.05)
    assert inflation(2.0 * rng.standard_normal(20_000)) == pytest.approx(4.0, rel=0.05)
    assert pytest.approx(norm.isf(0.25) ** 2) == CHI2_1_MEDIAN
    assert deflated_p(3.0, 4.0) == pytest.approx(norm.sf(1.5))
    assert deflated_p(3.0, 0.5) == pytest.approx(norm.sf(3.0))  # λ below 1 never sharpens the test
    assert required_score(0.01, 4.0) == pytest.approx(2 * norm.isf(0.01))
    # Scores of a quiet but inflated stream (sd 2): deflated by their own λ they flag at about alpha.
    scores = 2.0 * rng.standard_normal(20_000)
    lam = inflation(scores[:2000])
    rate = np.mean([deflated_p(s, lam) <= 0.01 for s in scores[2000:]])
    assert rate <= fpr_bound(0.01, 18_000) + 0.005
    with pytest.raises(ValueError):
        inflation([])
    assert null_moments(np.ones(10)) == (1.0, 0.0, 0.0) and z_score(1.0, 1.0, 0.0) == 0.0
