"""Agreement with human labels: constructed labels with a known answer, and the degradation test's error rate."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from monitor.evaluators.agreement import agreement, degraded, delong_auc, human_good, stopped


def _window(rng: np.random.Generator, n: int, separation: float, *, good_share: float = 0.5,
            good_when_high: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Scores of good answers ~ N(separation, 1), bad ones ~ N(0, 1): true AUC = Phi(separation / sqrt 2)."""
    good = rng.random(n) < good_share
    scores = rng.normal(0.0, 1.0, n) + separation * good
    if not good_when_high:
        scores = -scores
    return 1 / (1 + np.exp(-scores)), good  # a monotone map into [0, 1] leaves the AUC unchanged


def test_delong_auc_equals_mann_whitney_with_ties() -> None:
    pos = np.array([0.9, 0.8, 0.8, 0.3])
    neg = np.array([0.8, 0.2, 0.1])
    auc, var = delong_auc(pos, neg)
    u = stats.mannwhitneyu(pos, neg).statistic
    assert auc == pytest.approx(u / (pos.size * neg.size))
    assert var > 0


def test_known_separation_lies_in_interval_at_nominal_rate() -> None:
    """Over many windows, the 95% interval covers the true AUC about 95% of the time (and never far less)."""
    rng = np.random.default_rng(7)
    sep = 1.0
    truth = float(stats.norm.cdf(sep / math.sqrt(2)))  # 0.760
    covered = 0
    runs = 400
    for _ in range(runs):
        scores, good = _window(rng, 200, sep)
        a = agreement(scores, good, good_when_high=True, threshold=0.5)
        assert a.auc_low is not None and a.auc_high is not None
        covered += a.auc_low <= truth <= a.auc_high
    # binomial(400, 0.95): 3 sd below is ~0.917
    assert covered / runs >= 0.91


def test_direction_respected() -> None:
    """A refusal-like evaluator (high = bad) that tracks the labels well has a high AUC, not a low one."""
    rng = np.random.default_rng(1)
    scores, good = _window(rng, 400, 2.0, good_when_high=False)
    midpoint = 1 / (1 + math.exp(1.0))  # scores of bad ~ sigmoid(-N(0,1)), good ~ sigmoid(-N(2,1)): cut at -1
    a = agreement(scores, good, good_when_high=False, threshold=midpoint)
    wrong = agreement(scores, good, good_when_high=True, threshold=midpoint)
    assert a.auc is not None and wrong.auc is not None
    assert a.auc > 0.85 and wrong.auc < 0.15
    # both class recalls are Phi(1) = 0.841 at the midpoint
    assert a.ba_low is not None and a.ba_high is not None and a.ba_low <= 0.841 <= a.ba_high


def test_balanced_accuracy_known_rates() -> None:
    # 40 good: 30 above threshold; 60 bad: 45 below threshold -> recalls 0.75 and 0.75
    scores = np.array([0.9] * 30 + [0.1] * 10 + [0.1] * 45 + [0.9] * 15)
    good = np.array([True] * 40 + [False] * 60)
    a = agreement(scores, good, good_when_high=True, threshold=0.5)
    assert a.balanced_accuracy == pytest.approx(0.75)
    assert a.ba_low is not None and a.ba_high is not None
    assert a.ba_low < 0.75 < a.ba_high
    assert (a.n, a.n_good, a.n_bad) == (100, 40, 60)


def test_perfect_separation_interval_not_a_point() -> None:
    scores = np.array([0.9] * 8 + [0.1] * 8)
    good = np.array([True] * 8 + [False] * 8)
    a = agreement(scores, good, good_when_high=True, threshold=0.5)
    assert a.auc == 1.0
    assert a.auc_low is not None and a.auc_low < 0.95  # 16 labels cannot prove near-perfect agreement
    assert a.auc_se is not None and a.auc_se > 0


def test_unscored_events_left_out_and_too_few_labels_insufficient() -> None:
    scores = np.array([np.nan, 0.9, 0.2, 0.8, np.nan])
    good = np.array([True, True, False, True, False])
    a = agreement(scores, good, good_when_high=True, threshold=0.5)
    assert (a.n, a.n_good, a.n_bad) == (3, 2, 1)
    assert not a.sufficient and a.auc is None
    assert not degraded(a, a).degraded


def test_no_false_degradation_on_same_distribution_windows() -> None:
    """Same distribution in baseline and window: the one-sided test pages at about its nominal rate."""
    rng = np.random.default_rng(11)
    alpha, runs = 0.05, 600
    pages = 0
    for _ in range(runs):
        base = agreement(*_window(rng, 300, 1.2), good_when_high=True, threshold=0.5)
        cur = agreement(*_window(rng, 150, 1.2), good_when_high=True, threshold=0.5)
        pages += degraded(cur, base, alpha=alpha).degraded
    # binomial(600, 0.05): mean 30, sd 5.3; allow 3 sd above the nominal rate
    assert pages / runs <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


def test_real_degradation_detected() -> None:
    """A judge whose separation collapses (AUC 0.84 -> 0.58) is paged nearly always at 150 labels."""
    rng = np.random.default_rng(12)
    hits = 0
    runs = 200
    for _ in range(runs):
        base = agreement(*_window(rng, 300, 1.4), good_when_high=True, threshold=0.5)
        cur = agreement(*_window(rng, 150, 0.3), good_when_high=True, threshold=0.5)
        result = degraded(cur, base, alpha=0.01)
        hits += result.degraded
        assert result.drop is not None and result.p_value is not None
    assert hits / runs >= 0.95


def test_min_drop_guards_tiny_but_significant_drops() -> None:
    rng = np.random.default_rng(3)
    base = agreement(*_window(rng, 20_000, 1.5), good_when_high=True, threshold=0.5)
    cur = agreement(*_window(rng, 20_000, 1.4), good_when_high=True, threshold=0.5)
    assert degraded(cur, base, alpha=0.01).degraded  # 0.02 AUC drop on 20k labels is significant ...
    assert not degraded(cur, base, alpha=0.01, min_drop=0.05).degraded  # ... but below the configured care level


def test_human_labels_and_coverage() -> None:
    assert human_good(True, corrected=True) is False  # a correction is negative whatever the thumbs say
    assert human_good(True, corrected=False) is True
    assert human_good(None, corrected=False) is None
    assert stopped(0.2, 0.5) and not stopped(0.6, 0.5) and not stopped(None, 0.5)
    with pytest.raises(ValueError):
        stopped(0.2, 1.5)
