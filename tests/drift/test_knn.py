"""The kNN two-sample test: validity (FPR at alpha), power, exactness details, input errors."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from monitor.drift import available, get_detector
from monitor.drift.knn import knn_test, neighbour_graph
from tests.drift.conftest import unit_gaussian
from tests.support.stats import fpr_bound


def test_registered_as_embedding_detector() -> None:
    assert "knn" in available("embedding")
    assert get_detector("knn") is knn_test


def test_false_positive_rate_at_alpha() -> None:
    # 200 same-distribution trials at 60 per side, alpha 0.05: at most 0.05 + 3 binomial sd (0.096).
    rng = np.random.default_rng(5)
    trials = 200
    with threadpool_limits(1):
        fired = sum(
            knn_test(unit_gaussian(rng, 60, 16), unit_gaussian(rng, 60, 16), alpha=0.05, seed=t,
                     n_permutations=200).is_drift
            for t in range(trials)
        )
    assert fired / trials <= fpr_bound(0.05, trials)


def test_power_on_a_new_cluster() -> None:
    # A fifth of the current window is a tight new cluster: found in (nearly) every trial at alpha 0.01.
    rng = np.random.default_rng(6)
    hits = 0
    for t in range(20):
        ref = unit_gaussian(rng, 200, 32)
        cur = unit_gaussian(rng, 200, 32)
        cur[:40] = unit_gaussian(rng, 40, 32, shift=6.0)
        hits += knn_test(ref, cur, seed=t, n_permutations=200).is_drift
    assert hits >= 18


def test_effect_is_about_half_the_share_of_a_separate_cluster() -> None:
    rng = np.random.default_rng(7)
    ref = unit_gaussian(rng, 500, 32)
    cur = unit_gaussian(rng, 500, 32)
    cur[:150] = unit_gaussian(rng, 150, 32, shift=20.0)  # 30% of the window, far from everything
    result = knn_test(ref, cur, seed=0, n_permutations=100)
    assert result.effect_size == pytest.approx(0.15, abs=0.04)
    assert result.details["null_effect_q"] < result.effect_size


def test_deterministic_for_a_seed_and_label_free_graph() -> None:
    rng = np.random.default_rng(8)
    ref, cur = unit_gaussian(rng, 80, 8), unit_gaussian(rng, 90, 8, shift=0.5)
    assert knn_test(ref, cur, seed=3).to_dict() == knn_test(ref, cur, seed=3).to_dict()
    pooled = np.concatenate([ref, cur])
    graph = neighbour_graph(pooled, 5)
    assert graph.shape == (170, 5)
    assert not np.any(graph == np.arange(170)[:, None])  # nobody is their own neighbour
    # Scaling rows does not change a cosine graph.
    np.testing.assert_array_equal(np.sort(neighbour_graph(pooled * 3.0, 5), axis=1), np.sort(graph, axis=1))


def test_bad_input_is_refused() -> None:
    x = np.zeros((30, 4))
    with pytest.raises(ValueError, match="k must be positive"):
        knn_test(x, x, k=0)
    with pytest.raises(ValueError, match="alpha"):
        knn_test(x, x, alpha=1.5)
    with pytest.raises(ValueError, match="same dimension"):
        knn_test(x, np.zeros((30, 5)))
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        knn_test(x, bad)
