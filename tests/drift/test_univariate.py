from __future__ import annotations

import numpy as np
import pytest

from monitor.drift import InsufficientDataError
from monitor.drift.univariate import ks_test, psi_test, quantile_bin_edges
from tests.support.stats import fpr_bound

TRIALS = 200


def test_ks_false_positive_rate_and_power() -> None:
    rng = np.random.default_rng(0)
    false_alarms = sum(
        ks_test(rng.lognormal(size=200), rng.lognormal(size=200), alpha=0.05, min_effect=0.0).is_drift
        for _ in range(TRIALS)
    )
    assert false_alarms / TRIALS <= fpr_bound(0.05, TRIALS)
    hits = sum(
        ks_test(rng.lognormal(size=200), rng.lognormal(0.5, size=200), alpha=0.05).is_drift for _ in range(50)
    )
    assert hits / 50 >= 0.9


def test_ks_floor_blocks_significant_but_tiny_shift() -> None:
    rng = np.random.default_rng(1)
    result = ks_test(rng.normal(size=100_000), rng.normal(0.03, size=100_000))
    assert result.p_value is not None and result.p_value < 0.01
    assert result.effect_size is not None and result.effect_size < 0.1
    assert not result.is_drift


def test_psi_quiet_vs_shifted() -> None:
    rng = np.random.default_rng(2)
    quiet = [psi_test(rng.gamma(2.0, size=1000), rng.gamma(2.0, size=1000)) for _ in range(TRIALS)]
    # Expected null PSI ~ 9 * (2/1000) = 0.018; 0.2 is an order of magnitude above it.
    assert max(r.statistic for r in quiet) < 0.1
    assert not any(r.is_drift for r in quiet)
    shifted = psi_test(rng.gamma(2.0, size=1000), rng.gamma(2.0, size=1000) * 1.6)
    assert shifted.is_drift and shifted.statistic > 0.2
    assert shifted.p_value is None and shifted.threshold == 0.2


def test_psi_handles_empty_bins_and_out_of_range_values() -> None:
    rng = np.random.default_rng(3)
    ref = rng.uniform(0, 1, size=500)
    result = psi_test(ref, rng.uniform(5, 6, size=500))  # every current value above the reference max
    assert np.isfinite(result.statistic) and result.is_drift
    assert result.details["current_shares"][-1] == pytest.approx(1.0)


def test_psi_on_discrete_series_merges_duplicate_edges() -> None:
    rng = np.random.default_rng(4)
    tokens = rng.poisson(2.0, size=2000).astype(float)  # heavy ties: quantile cuts repeat
    edges = quantile_bin_edges(tokens, 10)
    assert edges.size < 9 and np.all(np.diff(edges) > 0)
    assert not psi_test(tokens[:1000], tokens[1000:]).is_drift
    assert psi_test(tokens, rng.poisson(4.0, size=2000).astype(float)).is_drift


def test_scalar_edge_cases() -> None:
    with pytest.raises(InsufficientDataError):
        ks_test(np.arange(5.0), np.arange(100.0))
    with pytest.raises(InsufficientDataError, match="min_samples=100"):
        psi_test(np.arange(50.0), np.arange(500.0))
    with pytest.raises(ValueError, match="NaN"):
        ks_test(np.r_[np.arange(50.0), np.nan], np.arange(100.0))
    with pytest.raises(ValueError, match="1-D"):
        ks_test(np.ones((30, 2)), np.ones((30, 2)))
    constant = ks_test(np.full(50, 3.0), np.full(60, 3.0))
    assert constant.statistic == 0.0 and not constant.is_drift
    assert psi_test(np.full(200, 3.0), np.full(200, 3.0)).statistic == pytest.approx(0.0)
