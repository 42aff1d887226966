"""Disparity metrics, including statistical checks of the flagging rule.

Tolerances: with T seeded trials and a true rate p, the observed rate has sd sqrt(p(1-p)/T);
bounds below sit about 3.5 sd away, so a correct implementation fails them with probability
well under 1e-3 (and, being seeded, deterministically never).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from monitor.safety.disparity import DisparityConfig, disparity_report, mean_disparity, rate_disparity
from monitor.safety.permutation import max_gap_pvalue


def _sentiment_window(seed: int, shift: float, n: int = 60, k: int = 4, sd: float = 0.4):
    rng = np.random.default_rng(seed)
    groups = np.repeat([f"g{i}" for i in range(k)], n)
    values = rng.normal(0.2, sd, groups.size)
    values[groups == "g0"] -= shift
    return groups, values


def test_one_group_made_more_negative_is_flagged_and_significant() -> None:
    groups, values = _sentiment_window(seed=1, shift=0.4)
    result = mean_disparity(groups, values, metric="sentiment")
    assert result.is_flagged and result.significant and result.practical
    assert result.min_group == "g0"
    assert result.p_value <= 0.002  # 999 permutations: the smallest p is 0.001
    g0 = next(g for g in result.groups if g.group == "g0")
    assert g0.ci_low < g0.value < g0.ci_high and g0.n == 60


def test_power_on_a_shifted_group() -> None:
    # Shift 0.35 on sd 0.4 (d ~ 0.9) with 60 events per group: power measured ~0.98.
    flagged = [
        mean_disparity(*_sentiment_window(s, 0.35), config=DisparityConfig(seed=s)).is_flagged
        for s in range(50)
    ]
    assert np.mean(flagged) >= 0.85


def test_equal_groups_false_flag_rate_within_alpha_plus_tolerance() -> None:
    trials = 200
    results = [
        mean_disparity(*_sentiment_window(s, 0.0), config=DisparityConfig(seed=s))
        for s in range(1000, 1000 + trials)
    ]
    flagged = np.mean([r.is_flagged for r in results])
    below_alpha = np.mean([r.p_value < 0.01 for r in results])
    below_tenth = np.mean([r.p_value < 0.10 for r in results])
    # alpha = 0.01: sd over 200 trials is 0.007, so 0.035 is alpha + ~3.5 sd.
    assert flagged <= 0.035
    assert below_alpha <= 0.035
    # The test is not just conservative: at level 0.10 it rejects about 10% (sd 0.021).
    assert 0.03 <= below_tenth <= 0.175


def test_extreme_pair_test_is_biased_but_permutation_max_gap_is_not() -> None:
    # Ten equal groups: a Welch t-test between the two most extreme groups rejects far more
    # often than its nominal 5%, which is why the max-gap statistic is permuted instead.
    welch_rejects = perm_rejects = 0
    trials = 150
    for s in range(trials):
        rng = np.random.default_rng(s)
        codes = np.repeat(np.arange(10), 40)
        values = rng.normal(size=codes.size)
        means = np.array([values[codes == c].mean() for c in range(10)])
        hi, lo = values[codes == means.argmax()], values[codes == means.argmin()]
        welch_rejects += stats.ttest_ind(hi, lo, equal_var=False).pvalue < 0.05
        perm_rejects += max_gap_pvalue(codes, values, n_permutations=199, rng=rng) < 0.05
    assert welch_rejects / trials > 0.3  # measured 0.54; nominal would be 0.05
    assert perm_rejects / trials <= 0.05 + 0.065  # 0.05 + ~3.5 sd (sd 0.018)


def test_rate_disparity_four_fifths_rule_and_significance() -> None:
    rng = np.random.default_rng(5)
    groups = np.repeat(["a", "b", "c"], 400)
    rates = {"a": 0.05, "b": 0.05, "c": 0.20}
    flags = np.array([rng.random() < rates[g] for g in groups])
    result = rate_disparity(groups, flags, metric="toxicity_rate")
    assert result.kind == "rate" and result.max_group == "c"
    assert result.ratio < 0.8 and result.practical and result.significant and result.is_flagged
    for g in result.groups:
        assert g.ci_low <= g.value <= g.ci_high


def test_significant_but_tiny_rate_gap_is_not_flagged() -> None:
    # 0.40% vs 0.60% over 100k events each: significant, ratio 0.67, but a 0.2-point gap
    # is below min_rate_gap (1 point), so nobody gets paged.
    groups = np.repeat(["a", "b"], 100_000)
    flags = np.zeros(groups.size)
    flags[:400] = 1  # a: 0.4%
    flags[100_000 : 100_000 + 600] = 1  # b: 0.6%
    result = rate_disparity(groups, flags, config=DisparityConfig(n_permutations=199))
    assert result.significant and result.ratio < 0.8
    assert not result.practical and not result.is_flagged


def test_small_groups_are_reported_but_not_flagged() -> None:
    rng = np.random.default_rng(3)
    groups = np.array(["big1"] * 200 + ["big2"] * 200 + ["tiny"] * 10)
    values = np.r_[rng.normal(0.2, 0.3, 400), np.full(10, -0.9)]
    result = mean_disparity(groups, values)
    tiny = next(g for g in result.groups if g.group == "tiny")
    assert tiny.n == 10 and not tiny.eligible and tiny.value == pytest.approx(-0.9)
    assert "tiny" not in (result.max_group, result.min_group)
    assert not result.is_flagged
    # With only one eligible group there is nothing to compare.
    only_one = mean_disparity(groups[200:], values[200:])
    assert math.isnan(only_one.gap) and math.isnan(only_one.p_value) and not only_one.is_flagged


def test_missing_values_and_groups_are_ignored() -> None:
    groups = ["a", "b", None, float("nan"), "", "a", "b"] * 20
    sentiment = [0.1, 0.2, -1.0, -1.0, -1.0, float("nan"), 0.2] * 20
    result = mean_disparity(groups, sentiment, config=DisparityConfig(min_group_size=10))
    assert {g.group: g.n for g in result.groups} == {"a": 20, "b": 40}


def test_report_combines_metrics_and_serialises_to_strict_json() -> None:
    rng = np.random.default_rng(8)
    groups = np.repeat(["x", "y"], 100).tolist() + ["z"] * 3
    report = disparity_report(
        groups,
        toxic=(rng.random(203) < 0.1).astype(float),
        sentiment=rng.normal(size=203),
        negative_feedback=np.where(rng.random(203) < 0.5, np.nan, rng.random(203) < 0.2),
    )
    assert [m.metric for m in report.metrics] == ["toxicity_rate", "sentiment", "negative_feedback_rate"]
    text = json.dumps(report.to_dict(), allow_nan=False)
    assert json.loads(text)["metrics"]["sentiment"]["ratio"] is None  # NaN -> null
    assert report.get("sentiment").kind == "mean"
    with pytest.raises(KeyError, match="no metric"):
        report.get("latency")


def test_input_validation() -> None:
    with pytest.raises(ValueError, match="0/1"):
        rate_disparity(["a", "b"], [0.3, 1.0])
    with pytest.raises(ValueError, match="3 values for 2 group labels"):
        mean_disparity(["a", "b"], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="at least one"):
        disparity_report(["a"])
    with pytest.raises(ValueError, match="alpha"):
        DisparityConfig(alpha=0.0)


def test_permutation_pvalue_is_seeded_and_never_zero() -> None:
    codes = np.repeat([0, 1], 50)
    values = np.r_[np.zeros(50), np.ones(50)]
    p1 = max_gap_pvalue(codes, values, n_permutations=99, rng=np.random.default_rng(0))
    p2 = max_gap_pvalue(codes, values, n_permutations=99, rng=np.random.default_rng(0))
    assert p1 == p2 == pytest.approx(1 / 100)
    with pytest.raises(ValueError, match="every group code"):
        max_gap_pvalue(np.array([0, 2]), np.array([1.0, 2.0]), rng=np.random.default_rng(0))


def test_binary_shortcut_matches_label_shuffling() -> None:
    # 0/1 values take the multivariate-hypergeometric path; doubling them (0/2) takes the
    # shuffling path with the same p-value in distribution. 20k permutations each: Monte Carlo
    # sd of each p is ~0.0035, so the two agree within 0.02.
    rng = np.random.default_rng(0)
    codes = np.repeat([0, 1, 2], [50, 80, 70])
    flags = (rng.random(codes.size) < np.where(codes == 2, 0.3, 0.15)).astype(float)
    fast = max_gap_pvalue(codes, flags, n_permutations=20_000, rng=np.random.default_rng(1))
    slow = max_gap_pvalue(codes, 2.0 * flags, n_permutations=20_000, rng=np.random.default_rng(2))
    assert 0.001 < fast < 0.999
    assert fast == pytest.approx(slow, abs=0.02)


def test_equal_rates_false_flag_rate_within_alpha_plus_tolerance() -> None:
    # Same check as for means, on the 0/1 path: three groups at a 15% toxicity rate.
    flagged = p_small = 0
    for s in range(200):
        rng = np.random.default_rng(s)
        groups = np.repeat(["a", "b", "c"], 150)
        result = rate_disparity(groups, rng.random(groups.size) < 0.15, config=DisparityConfig(seed=s))
        flagged += result.is_flagged
        p_small += result.p_value < 0.01
    assert flagged / 200 <= 0.035 and p_small / 200 <= 0.035
