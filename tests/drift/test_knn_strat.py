"""The stratified kNN test: valid on same-distribution samples AND under a reweighting between clusters (where the
plain kNN test is not), powerful on a new sub-cluster inside a known cluster, deterministic, exact permutations."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from monitor.drift import available, get_detector
from monitor.drift.knn import knn_test
from monitor.drift.knn_strat import knn_strat_test, stratified_labels
from tests.drift.conftest import unit_gaussian
from tests.support.stats import fpr_bound

_DIM = 16
_CLUSTERS = 6


def _centres(rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal((_CLUSTERS, _DIM))


def _clustered(rng: np.random.Generator, centres: np.ndarray, n: int, shares: np.ndarray) -> np.ndarray:
    """n rows from well-separated Gaussian clusters with these shares (cluster sd 0.5 against centres ~4 apart)."""
    picks = rng.choice(centres.shape[0], n, p=shares / shares.sum())
    return (centres[picks] + 0.5 * rng.standard_normal((n, centres.shape[1]))).astype(np.float32)


def _reweighted_shares() -> np.ndarray:
    # Half the clusters at 1.5x their reference share: a change of mix with nothing new.
    return np.where(np.arange(_CLUSTERS) % 2 == 0, 1.5, 1.0)


def test_registered_as_embedding_detector() -> None:
    assert "knn_strat" in available("embedding")
    assert get_detector("knn_strat") is knn_strat_test


def test_stratified_labels_keep_every_cells_current_count() -> None:
    rng = np.random.default_rng(1)
    cells = rng.integers(0, 7, 300)
    is_current = rng.random(300) < 0.4
    labels = stratified_labels(cells, is_current, 50, rng)
    for c in range(7):
        assert (labels[:, cells == c].sum(axis=1) == is_current[cells == c].sum()).all()
    # ... and shuffle within a cell: every item of a mixed cell is current in some labellings, not in others.
    mixed = [c for c in range(7) if 0 < is_current[cells == c].sum() < (cells == c).sum()]
    assert mixed
    share = labels[:, np.isin(cells, mixed)].mean(axis=0)
    assert (share > 0).all() and (share < 1).all()


def test_false_positive_rate_on_same_distribution_samples() -> None:
    # 200 trials at 150 per side, alpha 0.05: at most 0.05 + 3 binomial sd (0.096).
    rng = np.random.default_rng(5)
    trials = 200
    with threadpool_limits(1):
        fired = sum(knn_strat_test(unit_gaussian(rng, 150, _DIM), unit_gaussian(rng, 150, _DIM), alpha=0.05, seed=t,
                                   n_permutations=200).is_drift for t in range(trials))
    assert fired / trials <= fpr_bound(0.05, trials)


def test_false_positive_rate_under_a_reweighting_between_clusters() -> None:
    # Same clusters, half of them at 1.5x their share in the window (120 trials, alpha 0.05): within the bound.
    rng = np.random.default_rng(11)
    trials = 120
    with threadpool_limits(1):
        fired = sum(knn_strat_test(_clustered(rng, centres, 300, np.ones(_CLUSTERS)),
                                   _clustered(rng, centres, 300, _reweighted_shares()), alpha=0.05, seed=t,
                                   n_permutations=200).is_drift
                    for t, centres in ((t, _centres(rng)) for t in range(trials)))
    assert fired / trials <= fpr_bound(0.05, trials)


def test_a_strong_reweighting_fires_the_plain_knn_test_but_not_the_stratified_one() -> None:
    # One cluster at 3x its share: the plain kNN test (the same statistic, one global shuffle) fires on most
    # windows (39 of 60 when written), the stratified one stays within the binomial bound on the same windows.
    rng = np.random.default_rng(13)
    trials = 60
    shares = np.ones(_CLUSTERS)
    shares[0] = 3.0
    strat = plain = 0
    with threadpool_limits(1):
        for t in range(trials):
            centres = _centres(rng)
            ref = _clustered(rng, centres, 300, np.ones(_CLUSTERS))
            cur = _clustered(rng, centres, 300, shares)
            strat += knn_strat_test(ref, cur, alpha=0.05, seed=t, n_permutations=200).is_drift
            plain += knn_test(ref, cur, alpha=0.05, seed=t, n_permutations=200).is_drift
    assert strat / trials <= fpr_bound(0.05, trials)
    assert plain / trials >= 0.4


def test_power_on_a_new_sub_cluster_inside_a_known_cluster() -> None:
    # 10% of the window is a tight sub-cluster inside cluster 0's spread (offset 0.6 from its centre, sd 0.1),
    # on top of the same reweighting as above: found in nearly every trial at alpha 0.01.
    rng = np.random.default_rng(12)
    hits = 0
    trials = 20
    with threadpool_limits(1):
        for t in range(trials):
            centres = _centres(rng)
            ref = _clustered(rng, centres, 300, np.ones(_CLUSTERS))
            cur = _clustered(rng, centres, 300, _reweighted_shares())
            direction = rng.standard_normal(_DIM)
            spot = centres[0] + 0.6 * direction / np.linalg.norm(direction)
            cur[:30] = spot + 0.1 * rng.standard_normal((30, _DIM))
            hits += knn_strat_test(ref, cur, seed=t, n_permutations=500).is_drift
    assert hits >= 18


def test_deterministic_for_a_seed() -> None:
    rng = np.random.default_rng(8)
    ref, cur = unit_gaussian(rng, 120, 8), unit_gaussian(rng, 110, 8, shift=0.5)
    first = knn_strat_test(ref, cur, seed=3).to_dict()
    assert first == knn_strat_test(ref, cur, seed=3).to_dict()
    assert first["details"]["cells"] == 120 // 5


def test_bad_input_is_refused() -> None:
    x = np.zeros((30, 4))
    with pytest.raises(ValueError, match="cell_size must be positive"):
        knn_strat_test(x, x, cell_size=0)
    with pytest.raises(ValueError, match="k must be positive"):
        knn_strat_test(x, x, k=0)
    with pytest.raises(ValueError, match="alpha"):
        knn_strat_test(x, x, alpha=1.5)
