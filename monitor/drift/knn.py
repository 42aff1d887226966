"""Nearest-neighbour two-sample test (Schilling 1986; Henze 1988) on cosine similarity.

Every item of the pooled window links to its `k` (DEFAULT_K = 6) most similar items. Under "no drift" an item's
neighbours come from its own side about as often as chance allows; when part of the current window
is about something the reference never saw, those items sit in a region with no reference items,
and their neighbours are all current items. The default statistic (`statistic="isolated"`) counts
those items directly: current items with at least `j` current-side neighbours, `j` the fewest that
chance gives with probability <= ISOLATION_TAIL. Henze's statistic, the number of links joining two
items of the same side (`statistic="same_side"`), adds a new cluster's excess to thousands of chance
links; on CLINC150 at 10% new intents the isolated count was far more sensitive (docs/drift.md).

Why this test next to MMD: on real support-bot queries the typical shift is a few *neighbouring*
intents (a new product, an outage topic). With MiniLM vectors they add a small, tight cluster that
barely moves the kernel mean embedding MMD sees (MMD with the median bandwidth detected 10% of
the window on new CLINC150 intents in about a third of the trials at alpha 0.05), while every one of
those items has same-side neighbours (the kNN test found it in 85% at alpha 0.01, with no false
alarms; bench/drift_power.py).

p-value: the neighbour graph is a function of the pooled, unlabelled items, so it is unchanged by
any relabelling; permuting the side labels over the fixed graph therefore gives an exact permutation
test. Each permutation only re-counts labels over N·k links, so 1000 permutations cost a fraction of
the neighbour search.

Effect size: the share of same-side links above chance, rescaled so that 0 means chance and 1
means every link stays on its side: (T/(N·k) - p0) / (1 - p0), with p0 the chance share
(m(m-1) + n(n-1)) / (N(N-1)). If a share eps of an equal-size current window is a new, separate
cluster, the effect is about eps/2 (like the classifier's AUC - 0.5).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
from scipy.stats import binom

from monitor.drift import refcache
from monitor.drift._validate import DEFAULT_MIN_SAMPLES, check_alpha, check_pair, subsample
from monitor.drift.mmd import sequential_exceedances, sequential_p_value
from monitor.drift.null import null_moments, z_score
from monitor.drift.registry import register
from monitor.drift.result import DriftResult

_ROWS_PER_BLOCK = 512  # similarity rows at a time: 512 x N float32 and their float64 ranks (24 MB at N = 4000)
_PERMS_PER_CHUNK = 100
_SEQUENTIAL_MIN = 200
ISOLATION_TAIL = 0.02
"""An item is *isolated* when so many of its k neighbours are on the current side that chance alone gives
that at most this often (binomial tail at the chance share). 0.02 was chosen on CLINC150 (bench/data) at k = 10:
at 1,000 per side it meant 9 of 10 neighbours; 10 of 10 (tail 0.001) lost power to too few counted items, 8 of
10 (0.055) drowned the new cluster in chance ones. At DEFAULT_K = 6 and equal sides it means 6 of 6 (0.016)."""
DEFAULT_K = 6
"""Neighbours per item. A new intent arrives as a small cluster (10% of a 1,000-event window from 10 new intents is
~10 queries each), and an item is counted only if nearly all of its k neighbours are current items, so k must stay
below the cluster's size. Chosen on CLINC150 (2026-12-06, `python bench/knn_constants.py`: 1,000 per side, 10% from
10 new same-domain intents, 120 windows on two seeds, share with score >= Φ⁻¹(0.995), the bar the better of the two
default rows must pass under BH): k = 4 / 5 / 6 / 7 / 8 / 10 gave 0.71 / 0.83 / 0.91 / 0.90 / 0.86 / 0.81; at
k = 6 none of 100 quiet windows passed the bar (equal sides, and 250 vs 2,000 rows). 6 is the smaller of the best
two (fewer links to count). A max over the thresholds j (higher criticism, each count standardised by its
permutation null) matched the fixed j within a trial (0.92 vs 0.91 at k = 6) and was weaker on 250-row windows
against 2,000, so the simpler fixed j stays (docs/drift.md)."""

Statistic = Literal["isolated", "same_side"]


_TIE_SEED = 0x6B6E6E
_SIM_GRID = 2.0**16
"""Similarities are compared on a grid of 2⁻¹⁶ (finer than any real difference between two queries, coarser than the
float32 rounding that makes copies of one vector differ by an ulp depending on where they sit in a product);
equal grid values are ordered by `tie_keys`."""


def tie_keys(total: int) -> np.ndarray:
    """A fixed i.i.d. uniform priority per pooled position, the same for every window (row i's key does not depend on
    how many rows follow it, so the reference's cached lists stay valid).

    Why: with repeated queries (a templated prompt, "hi") many neighbours are exact ties, and any rule that breaks
    them by position breaks them by side, since the reference comes first: on 300 rows per side drawn from the same
    40 vectors the old `argpartition` order flagged 31% of same-distribution windows at p <= 0.01. Keys drawn
    independently of the vectors make (vector, key) pairs exchangeable under "no drift", so the graph is again a
    function of the unlabelled pool and the permutation test exact (tests/drift/test_knn_ties.py)."""
    return np.random.default_rng(_TIE_SEED).random(total)


def neighbour_graph(pooled: np.ndarray, k: int) -> np.ndarray:
    """(N x k) indices of each row's k most cosine-similar other rows (self excluded; ties by `tie_keys`).

    Rows are L2-normalised here (MiniLM vectors already are), so the graph is the same for any
    scaling of an embedding. An all-zero row has similarity 0 to everything.
    """
    x = _normalised(pooled)
    return _blocked_top_k(x, x, 0, k, tie_keys(x.shape[0]))[0]


def _normalised(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.where(norms > 0, norms, np.float32(1.0)), dtype=np.float32)


def _top_k(sim: np.ndarray, k: int) -> np.ndarray:
    return np.argpartition(-sim, k - 1, axis=1)[:, :k]


def _ranked(sim: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """float64 ranking values: the similarity's 2⁻¹⁶ grid cell, ties within it ordered by the smaller key."""
    return np.floor(sim.astype(np.float64) * _SIM_GRID) + 0.999 * (1.0 - keys)


def _blocked_top_k(rows: np.ndarray, pool: np.ndarray, offset: int, k: int,
                   keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(indices, ranking values) of each of `rows`' k most similar rows of `pool` (`_ranked`, `keys` per row of
    `pool`), where row i of `rows` is row `offset + i` of `pool` (left out of its own list); `_ROWS_PER_BLOCK` rows
    at a time."""
    idx = np.empty((rows.shape[0], k), dtype=np.int64)
    ranks = np.empty((rows.shape[0], k), dtype=np.float64)
    for start in range(0, rows.shape[0], _ROWS_PER_BLOCK):
        stop = min(rows.shape[0], start + _ROWS_PER_BLOCK)
        rank = _ranked(rows[start:stop] @ pool.T, keys[None, :])
        rank[np.arange(stop - start), np.arange(offset + start, offset + stop)] = -np.inf
        top = _top_k(rank, k)
        idx[start:stop] = top
        ranks[start:stop] = np.take_along_axis(rank, top, axis=1)
    return idx, ranks


def split_neighbour_graph(reference: np.ndarray, current: np.ndarray, k: int) -> np.ndarray:
    """`neighbour_graph` of the pooled rows [reference; current], with the reference-only part cached.

    A reference row's k nearest pooled rows are among its k nearest reference rows (the same for every window,
    kept in the per-process cache, monitor/drift/refcache.py) and the current rows, so a window of n rows against
    m reference rows costs n·(m + n) similarities instead of (m + n)². Same neighbours as the direct search up to
    grid cells that an ulp straddles; a hit equals a miss.
    """
    xr, xc = _normalised(reference), _normalised(current)
    m = xr.shape[0]
    keys = tie_keys(m + xc.shape[0])

    ref_idx, ref_rank = refcache.cached(("knn-lists", k, refcache.fingerprint(xr)),
                                        lambda: _blocked_top_k(xr, xr, 0, k, keys[:m]))
    out = np.empty((m + xc.shape[0], k), dtype=np.int64)
    for start in range(0, m, _ROWS_PER_BLOCK):
        stop = min(m, start + _ROWS_PER_BLOCK)
        cand_rank = np.concatenate([ref_rank[start:stop], _ranked(xr[start:stop] @ xc.T, keys[None, m:])], axis=1)
        cand_idx = np.concatenate([ref_idx[start:stop], np.broadcast_to(np.arange(m, m + xc.shape[0]),
                                                                         (stop - start, xc.shape[0]))], axis=1)
        out[start:stop] = np.take_along_axis(cand_idx, _top_k(cand_rank, k), axis=1)
    out[m:] = _blocked_top_k(xc, np.concatenate([xr, xc]), m, k, keys)[0]
    return out


def _same_side_counts(labels: np.ndarray, graph: np.ndarray) -> np.ndarray:
    """Links joining same-side items, for each row of `labels` ((perms x N) bool)."""
    return np.count_nonzero(labels[:, :, None] == labels[:, graph], axis=(1, 2))


def _isolated_counts(labels: np.ndarray, graph: np.ndarray, need: int) -> np.ndarray:
    """Current-side items (label True) with at least `need` current-side neighbours, per row of `labels`."""
    current_neighbours = np.count_nonzero(labels[:, graph], axis=2)
    return np.count_nonzero((current_neighbours >= need) & labels, axis=1)


def _permuted_counts(
    labels: np.ndarray, graph: np.ndarray, need: int, in_degree: np.ndarray, m: int, n: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """(same-side links, isolated current items) for each row of `labels` ((perms x N) bool, n True each).

    Both from the current-side items' links only (n·k label reads per permutation instead of 2·N·k): with c_i
    the current-side neighbours of current item i, the current-current links are L = Σ c_i, the links into the
    current side are Σ in_degree(current), so the same-side links are L + (m·k - (Σ in_degree - L)). Integer
    counts, identical to `_same_side_counts` and `_isolated_counts` (tests/drift/test_knn.py)."""
    if int(np.count_nonzero(labels)) != labels.shape[0] * n:  # a tie at the partition cut: count directly
        return (_same_side_counts(labels, graph).astype(np.float64),
                _isolated_counts(labels, graph, need).astype(np.float64))
    cols = np.nonzero(labels)[1].reshape(labels.shape[0], n)
    current_neighbours = np.count_nonzero(labels[np.arange(labels.shape[0])[:, None, None], graph[cols]], axis=2)
    links = current_neighbours.sum(axis=1)
    same = 2 * links + m * k - in_degree[cols].sum(axis=1)
    iso = np.count_nonzero(current_neighbours >= need, axis=1)
    return same.astype(np.float64), iso.astype(np.float64)


def isolation_need(k: int, n_current: int, total: int) -> int:
    """Fewest current-side neighbours (of k) that chance gives a current item with probability <= ISOLATION_TAIL:
    the smallest j with P(Binomial(k, q) >= j) <= ISOLATION_TAIL, q = (n - 1)/(N - 1) the chance share; k if none."""
    q = (n_current - 1) / max(total - 1, 1)
    for j in range(1, k + 1):
        if float(binom.sf(j - 1, k, q)) <= ISOLATION_TAIL:
            return j
    return k


def prepared_graph(
    reference: np.ndarray, current: np.ndarray, *, k: int, n_permutations: int, max_per_side: int,
    min_samples: int, rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """The checks, subsampling and neighbour graph every kNN-graph test starts with (`knn`, `knn_strat`):
    (reference, current, k, graph), k capped at the pooled size - 1; ValueError on bad arguments."""
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be positive, got {n_permutations}")
    if max_per_side < 2:
        raise ValueError(f"max_per_side must be at least 2, got {max_per_side}")
    ref, cur = check_pair(reference, current, kind="embedding", min_samples=min_samples)
    ref, cur = subsample(ref, max_per_side, rng), subsample(cur, max_per_side, rng)
    m = ref.shape[0]
    k = min(k, m + cur.shape[0] - 1)
    graph = split_neighbour_graph(ref, cur, k) if k <= m - 1 else neighbour_graph(np.concatenate([ref, cur]), k)
    return ref, cur, k, graph


def permutation_nulls(
    draw: Callable[[int], np.ndarray], graph: np.ndarray, need: int, m: int, n: int, k: int, observed: float,
    statistic: Statistic, alpha: float, n_permutations: int, sequential: bool,
) -> tuple[np.ndarray, np.ndarray, int | None]:
    """(same-side links, isolated current items) of up to `n_permutations` labellings from `draw(size)` ((size x N)
    bool, n True each), and the sequential stop's h (None when not `sequential`): every kNN-graph test's null
    (`knn` draws labellings uniformly, `knn_strat` within cells)."""
    in_degree = np.bincount(graph.ravel(), minlength=m + n)
    permuted_same: list[np.ndarray] = []
    permuted_iso: list[np.ndarray] = []
    done = reached = 0
    h = sequential_exceedances(alpha, n_permutations) if sequential else None
    while done < n_permutations:
        size = min(_PERMS_PER_CHUNK, n_permutations - done)
        same, iso = _permuted_counts(draw(size), graph, need, in_degree, m, n, k)
        permuted_same.append(same)
        permuted_iso.append(iso)
        done += size
        # Sequential stop (monitor/drift/mmd.py, `sequential_p_value`), after at least _SEQUENTIAL_MIN permutations
        # so that the null's moments (the score) rest on as many as the calibration's block tests use.
        reached += int(np.count_nonzero((iso if statistic == "isolated" else same) >= observed))
        if h is not None and reached >= h and done >= _SEQUENTIAL_MIN:
            break
    return np.concatenate(permuted_same), np.concatenate(permuted_iso), h


@register("knn", kind="embedding")
def knn_test(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    alpha: float = 0.01,
    seed: int | None = None,
    k: int = DEFAULT_K,
    n_permutations: int = 1000,
    min_effect: float = 0.0,
    max_per_side: int = 2000,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    statistic: Statistic = "isolated",
    sequential: bool = True,
) -> DriftResult:
    """k-nearest-neighbour two-sample test (cosine); drift when p <= alpha AND effect >= min_effect.

    Sides larger than `max_per_side` are subsampled (seeded): the neighbour search is quadratic,
    and 2000 per side already finds a 10% shift of neighbouring intents most of the time. `sequential`: stop
    drawing permutations once the window is clearly unremarkable, as `mmd_test` does.
    """
    check_alpha(alpha)
    if statistic not in ("isolated", "same_side"):
        raise ValueError(f"statistic must be 'isolated' or 'same_side', got {statistic!r}")
    rng = np.random.default_rng(seed)
    ref, cur, k, graph = prepared_graph(reference, current, k=k, n_permutations=n_permutations,
                                        max_per_side=max_per_side, min_samples=min_samples, rng=rng)
    m, n = ref.shape[0], cur.shape[0]
    total = m + n
    labels = np.concatenate([np.zeros(m, dtype=bool), np.ones(n, dtype=bool)])
    need = isolation_need(k, n, total)
    observed_same = float(_same_side_counts(labels[None, :], graph)[0])
    observed_iso = float(_isolated_counts(labels[None, :], graph, need)[0])
    observed = observed_iso if statistic == "isolated" else observed_same

    def draw(size: int) -> np.ndarray:
        keys = rng.random((size, total))
        # The m smallest keys of each row mark a uniformly random size-m 'reference' set.
        return keys > np.partition(keys, m - 1, axis=1)[:, m - 1 : m]

    null_same, null_iso, h = permutation_nulls(draw, graph, need, m, n, k, observed, statistic, alpha,
                                               n_permutations, sequential)
    null = null_iso if statistic == "isolated" else null_same
    p_value = sequential_p_value(observed, null, h)
    chance = (m * (m - 1) + n * (n - 1)) / (total * (total - 1))
    # The effect size stays the same-side link share above chance (descriptive, for either statistic).
    effect = (observed_same / (total * k) - chance) / (1.0 - chance)
    null_mean, null_sd, null_skew = null_moments(null)
    details = {
        "min_effect": min_effect,
        "k": k,
        "statistic": statistic,
        "isolation_need": need,
        "isolated": observed_iso,
        "isolated_null_mean": float(null_iso.mean()),
        # Share of the window in current-only neighbourhoods beyond chance: ~ the share of new intents.
        "isolated_excess_share": (observed_iso - float(null_iso.mean())) / n,
        "null_sd": null_sd,
        "null_skew": null_skew,
        "z": z_score(observed, null_mean, null_sd),
        "n_permutations": n_permutations,
        "permutations_drawn": int(null.size),
        "sequential_h": h,
        "similarity": "cosine",
        "same_side_share": observed_same / (total * k),
        "chance_share": chance,
        "null_mean_share": float(null_same.mean()) / (total * k),
        # The effect a same-distribution window reaches with probability alpha (see thresholds.py).
        "null_effect_q": (float(np.quantile(null_same, 1.0 - alpha)) / (total * k) - chance) / (1.0 - chance),
    }
    is_drift = bool(p_value <= alpha and effect >= min_effect)
    return DriftResult("knn", observed, p_value, alpha, is_drift, effect, m, n, details)
