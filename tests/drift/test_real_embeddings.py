"""Calibration checks on real sentence embeddings (MiniLM on the shipped queries): slow."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from monitor.drift.calibration import topic_mix_windows
from monitor.drift.classifier import classifier_test
from monitor.drift.explain import explain_drift
from monitor.drift.mmd import mmd_test
from tests.support.stats import fpr_bound

pytestmark = pytest.mark.slow


def test_embeddings_are_unit_norm_384d(query_embeddings: dict[str, np.ndarray]) -> None:
    vectors = np.concatenate(list(query_embeddings.values()))
    assert vectors.shape[1] == 384 and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


@pytest.mark.parametrize("detector", [mmd_test, classifier_test])
def test_false_positive_rate_on_real_embeddings(detector, base_pool: np.ndarray) -> None:
    # 100 same-distribution trials at 100 per side, alpha 0.05, floor off: <= 0.05 + 3 sd (0.115).
    rng = np.random.default_rng(17)
    trials = 100
    extra = {"n_permutations": 100} if detector is mmd_test else {}
    with threadpool_limits(1):
        rejections = 0
        for t in range(trials):
            ref, cur = topic_mix_windows(
                base_pool, base_pool, n_reference=100, n_current=100, share=0.0, rng=rng
            )
            rejections += detector(ref, cur, alpha=0.05, seed=t, min_effect=0.0, **extra).is_drift
    assert rejections / trials <= fpr_bound(0.05, trials)


@pytest.mark.parametrize("detector", [mmd_test, classifier_test])
def test_quiet_large_windows_do_not_fire(detector, base_pool: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    for seed in range(3):
        ref, cur = topic_mix_windows(
            base_pool, base_pool, n_reference=3000, n_current=3000, share=0.0, rng=rng
        )
        result = detector(ref, cur, seed=seed)
        assert result.effect_size < result.details["min_effect"] / 2
        assert not result.is_drift


def test_disjoint_halves_of_the_pool_do_not_fire(base_pool: np.ndarray) -> None:
    rng = np.random.default_rng(2)
    half = base_pool.shape[0] // 2
    for seed in range(3):
        ref, cur = topic_mix_windows(
            base_pool, base_pool, n_reference=half, n_current=half, share=0.0, rng=rng, disjoint=True
        )
        assert not mmd_test(ref, cur, seed=seed).is_drift
        assert not classifier_test(ref, cur, seed=seed).is_drift


@pytest.mark.parametrize("topic", ["health_fitness", "billing_support"])
@pytest.mark.parametrize("detector", [mmd_test, classifier_test])
def test_twenty_percent_new_topic_fires(detector, topic: str, base_pool, query_embeddings) -> None:
    rng = np.random.default_rng(3)
    ref, cur = topic_mix_windows(
        base_pool, query_embeddings[topic], n_reference=1000, n_current=1000, share=0.2, rng=rng
    )
    result = detector(ref, cur, seed=0)
    assert result.is_drift, result


def test_explanation_points_at_the_new_topic(base_pool, query_embeddings) -> None:
    billing = query_embeddings["billing_support"]
    rng = np.random.default_rng(4)
    ref = base_pool[rng.integers(0, base_pool.shape[0], 600)]
    cur_base = base_pool[rng.integers(0, base_pool.shape[0], 420)]
    cur = np.concatenate([cur_base, billing[rng.integers(0, billing.shape[0], 180)]])  # rows >= 420: billing
    explanation = explain_drift(ref, cur, seed=0)
    top = explanation.clusters[0]
    assert top.share_current > 0.1 and top.lift > 5
    assert sum(i >= 420 for i in top.example_indices) >= 4
