"""The per-process reference cache and the faster exact paths it serves (monitor/drift/refcache.py): a cache hit
gives exactly the result a miss gives, the split kNN graph is the direct one, the kNN counts from the current
side's links equal the direct counts, and MMD's gathered permutations equal the dense ones up to float rounding."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.drift import refcache
from monitor.drift.knn import (
    _isolated_counts,
    _permuted_counts,
    _same_side_counts,
    knn_test,
    neighbour_graph,
    split_neighbour_graph,
)
from monitor.drift.mmd import _GATHER_RATIO, _exact_statistics, mmd_test, pooled_gram
from tests.drift.conftest import unit_gaussian


@pytest.mark.parametrize("detector", [mmd_test, knn_test])
def test_a_cache_hit_gives_the_result_of_a_miss(detector) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(11)
    ref, cur = unit_gaussian(rng, 400, 32), unit_gaussian(rng, 60, 32, shift=0.4)
    refcache.clear()
    miss = detector(ref, cur, seed=5, n_permutations=300).to_dict()
    assert refcache.stats()["misses"] == 1 and refcache.stats()["hits"] == 0
    hit = detector(ref, cur, seed=5, n_permutations=300).to_dict()
    assert refcache.stats()["hits"] == 1
    assert hit == miss
    other = ref.copy()
    other[0, 0] += 1e-3  # another reference is another key
    detector(other, cur, seed=5, n_permutations=300)
    assert refcache.stats()["misses"] == 2


def test_cached_arrays_are_read_only_and_the_budget_evicts() -> None:
    refcache.clear()
    (a,) = refcache.cached(("t", 1), lambda: (np.zeros(10),))
    with pytest.raises(ValueError):
        a[0] = 1.0
    budget = refcache.CACHE_BYTES
    try:
        refcache.CACHE_BYTES = 1000
        refcache.cached(("t", 2), lambda: (np.zeros(100),))  # 880 bytes in all: both kept
        refcache.cached(("t", 3), lambda: (np.zeros(100),))  # 1,600 > 1,000: the oldest go
        assert refcache.stats()["bytes"] <= 1000
        assert refcache.stats()["entries"] == 1
    finally:
        refcache.CACHE_BYTES = budget
        refcache.clear()


def test_split_graph_is_the_direct_graph() -> None:
    rng = np.random.default_rng(12)
    ref, cur = unit_gaussian(rng, 700, 16), unit_gaussian(rng, 90, 16, shift=0.3)
    direct = np.sort(neighbour_graph(np.concatenate([ref, cur]), 10), axis=1)
    np.testing.assert_array_equal(np.sort(split_neighbour_graph(ref, cur, 10), axis=1), direct)


def test_permuted_counts_equal_the_direct_counts() -> None:
    rng = np.random.default_rng(13)
    m, n, k = 300, 70, 10
    graph = neighbour_graph(unit_gaussian(rng, m + n, 16), k)
    keys = rng.random((50, m + n))
    labels = keys > np.partition(keys, m - 1, axis=1)[:, m - 1 : m]
    in_degree = np.bincount(graph.ravel(), minlength=m + n)
    same, iso = _permuted_counts(labels, graph, 8, in_degree, m, n, k)
    np.testing.assert_array_equal(same, _same_side_counts(labels, graph))
    np.testing.assert_array_equal(iso, _isolated_counts(labels, graph, 8))


@pytest.mark.parametrize(("m", "n"), [(900, 100), (100, 900)])
def test_gathered_mmd_permutations_equal_the_dense_ones(monkeypatch: pytest.MonkeyPatch, m: int, n: int) -> None:
    assert min(m, n) * _GATHER_RATIO <= m + n  # these sizes take the gathered path
    rng = np.random.default_rng(14)
    gram = pooled_gram(unit_gaussian(rng, m, 16), unit_gaussian(rng, n, 16, shift=0.2))
    gathered = _exact_statistics(gram, m, 0.7, 400, np.random.default_rng(1))
    monkeypatch.setattr("monitor.drift.mmd._GATHER_RATIO", 10**9)  # force the dense path, same permutations
    dense = _exact_statistics(gram, m, 0.7, 400, np.random.default_rng(1))
    assert gathered[0] == dense[0] and gathered[2] == dense[2]
    scale = float(np.std(dense[1]))
    np.testing.assert_allclose(gathered[1], dense[1], rtol=0, atol=1e-3 * scale)
