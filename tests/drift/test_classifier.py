from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from monitor.drift import InsufficientDataError
from monitor.drift.classifier import classifier_test
from tests.drift.conftest import unit_gaussian
from tests.support.stats import fpr_bound

TRIALS = 200


def test_false_positive_rate_at_alpha_005() -> None:
    # Same distribution: the cross-fitted Mann-Whitney p-value must reject at most alpha + 3 sd
    # (0.05 + 0.046 over 200 trials). Floor off, to test the p-value itself.
    rng = np.random.default_rng(321)
    with threadpool_limits(1):  # tiny fits: BLAS thread start-up costs more than the maths
        rejections = sum(
            classifier_test(
                unit_gaussian(rng, 100, dim=16),
                unit_gaussian(rng, 100, dim=16),
                alpha=0.05,
                seed=t,
                min_effect=0.0,
            ).is_drift
            for t in range(TRIALS)
        )
    assert rejections / TRIALS <= fpr_bound(0.05, TRIALS)


def test_power_on_clear_shift() -> None:
    rng = np.random.default_rng(8)
    trials = 50
    with threadpool_limits(1):
        hits = sum(
            classifier_test(
                unit_gaussian(rng, 60, dim=8), unit_gaussian(rng, 60, dim=8, shift=1.5), alpha=0.05, seed=t
            ).is_drift
            for t in range(trials)
        )
    assert hits / trials >= 0.9


def test_auc_statistic_and_effect_size() -> None:
    rng = np.random.default_rng(4)
    result = classifier_test(unit_gaussian(rng, 400, 16), unit_gaussian(rng, 400, 16, shift=4.0), seed=0)
    assert result.statistic > 0.95  # nearly separable
    assert result.effect_size == pytest.approx(result.statistic - 0.5)
    assert result.p_value is not None and result.p_value < 1e-10


def test_classes_are_balanced_and_capped() -> None:
    rng = np.random.default_rng(0)
    result = classifier_test(unit_gaussian(rng, 300, 8), unit_gaussian(rng, 90, 8), seed=0)
    assert result.details["n_used_per_side"] == 90
    assert (result.n_reference, result.n_current) == (300, 90)
    capped = classifier_test(unit_gaussian(rng, 300, 8), unit_gaussian(rng, 400, 8), seed=0, max_per_side=120)
    assert capped.details["n_used_per_side"] == 120


def test_floor_blocks_a_significant_but_tiny_shift() -> None:
    rng = np.random.default_rng(6)
    result = classifier_test(unit_gaussian(rng, 5000, 16), unit_gaussian(rng, 5000, 16, shift=0.15), seed=0)
    assert result.p_value is not None and result.p_value <= 0.01
    assert result.effect_size is not None and result.effect_size < 0.05
    assert not result.is_drift


def test_deterministic_for_a_seed() -> None:
    rng = np.random.default_rng(1)
    ref, cur = unit_gaussian(rng, 500, 16), unit_gaussian(rng, 700, 16, shift=0.3)
    assert classifier_test(ref, cur, seed=5).to_dict() == classifier_test(ref, cur, seed=5).to_dict()


def test_edge_cases() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(InsufficientDataError):
        classifier_test(unit_gaussian(rng, 10, 8), unit_gaussian(rng, 100, 8))
    bad = unit_gaussian(rng, 50, 8)
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        classifier_test(bad, unit_gaussian(rng, 50, 8))
    constant = np.zeros((60, 8), dtype=np.float32)
    same = classifier_test(constant, constant.copy(), seed=0)
    assert not same.is_drift and same.statistic == pytest.approx(0.5)
    assert classifier_test(constant, constant + 1.0, seed=0).is_drift
