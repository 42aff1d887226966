"""kNN two-sample test with its null permuted *within cells* of the reference (issue #16): blind to reweighting.

Why: real quiet traffic reweights its intents with the hour, and the plain kNN test (monitor/drift/knn.py) sees a
reweighting as strongly as 10% new intents, so its calibration inflates λ until the new intents no longer pass.
Here the statistic is kNN's (current items with at least `need` of their k neighbours on the current side), but
its null keeps each cell's count of current items fixed:

- cells: the cosine Voronoi regions of max(1, m // cell_size) reference rows drawn uniformly (seeded), as in
  monitor/drift/novelty.py; every pooled item (reference or current) belongs to the cell of its nearest anchor;
- null: in each cell with m_c reference and n_c current items, a permutation marks a uniformly random n_c of the
  m_c + n_c items as current (a stratified, conditional permutation). It is exact when the labels are
  exchangeable within cells, i.e. when the traffic changed only by shifting weight *between* cells (a density
  ratio constant inside each cell): then a cell with more current items also has more isolated ones by chance,
  and the null knows. A new intent that sits inside a known cell forms a sub-cluster of current items whose
  neighbours are mostly current, which the within-cell shuffle does not reproduce.

Reweighting *inside* a cell (several intents per cell at different hourly shares) is still seen; the cell size
trades that against power (a cell must be larger than a new intent's sub-cluster so the shuffle can scatter it).
The calibration (monitor/drift/thresholds.py) still measures what is left of the traffic's variation.

p-value and score as in `knn_test`: a sequential permutation p-value; the score the calibration reads is the
z of the observed count against the stratified null (mean, sd, skew in `details`).
"""

from __future__ import annotations

import numpy as np

from monitor.drift import refcache
from monitor.drift._validate import DEFAULT_MIN_SAMPLES, check_alpha
from monitor.drift.knn import (
    DEFAULT_K,
    _isolated_counts,
    _normalised,
    isolation_need,
    permutation_nulls,
    prepared_graph,
)
from monitor.drift.mmd import sequential_p_value
from monitor.drift.null import null_moments, z_score
from monitor.drift.registry import register
from monitor.drift.result import DriftResult

DEFAULT_CELL_SIZE = 5
"""Reference rows per cell (m // cell_size cells). Chosen on CLINC150 (docs/drift.md, bench/knn_strat_constants.py)."""


def cell_anchors(m: int, cell_size: int, seed: int | None) -> np.ndarray:
    """Indices of max(1, m // cell_size) reference rows drawn uniformly (seeded): the cells' anchors."""
    return np.sort(np.random.default_rng([0 if seed is None else seed, 7]).choice(m, max(1, m // cell_size),
                                                                                 replace=False))


def reference_cells(xr: np.ndarray, cell_size: int, seed: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(anchor rows, cell of each reference row), cached per reference, cell size and seed."""
    def compute() -> tuple[np.ndarray, np.ndarray]:
        anchors = np.ascontiguousarray(xr[cell_anchors(xr.shape[0], cell_size, seed)])
        return anchors, np.asarray((xr @ anchors.T).argmax(axis=1), dtype=np.int64)

    return refcache.cached(("knn-strat-cells", cell_size, seed, refcache.fingerprint(xr)), compute)  # type: ignore[return-value]


def stratified_labels(cells: np.ndarray, is_current: np.ndarray, perms: int, rng: np.random.Generator) -> np.ndarray:
    """(perms x N) bool labellings, each marking a uniformly random subset of every cell's items as current, of
    the same size as the cell's observed current items (so every row has exactly as many current items)."""
    n_cells = int(cells.max()) + 1
    size = np.bincount(cells, minlength=n_cells)
    cur = np.bincount(cells, weights=is_current, minlength=n_cells).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(size)])
    # Positions in cell-grouped order: the last n_c positions of each cell's block are its current items.
    pos_current = np.zeros(cells.size, dtype=bool)
    for c in np.flatnonzero(cur):
        pos_current[offsets[c + 1] - cur[c]: offsets[c + 1]] = True
    # A random order within each cell: sort by cell + a uniform key in [0, 1).
    keys = rng.random((perms, cells.size)) + cells[None, :].astype(np.float64)
    order = np.argsort(keys, axis=1)
    labels = np.empty((perms, cells.size), dtype=bool)
    np.put_along_axis(labels, order, np.broadcast_to(pos_current, (perms, cells.size)), axis=1)
    return labels


@register("knn_strat", kind="embedding")
def knn_strat_test(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    alpha: float = 0.01,
    seed: int | None = None,
    k: int = DEFAULT_K,
    cell_size: int = DEFAULT_CELL_SIZE,
    n_permutations: int = 1000,
    min_effect: float = 0.0,
    max_per_side: int = 2000,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    sequential: bool = True,
) -> DriftResult:
    """kNN isolated-count test with a within-cell (stratified) permutation null; drift when p <= alpha AND
    effect >= min_effect. Effect: the isolated count's excess over its stratified null mean, as a share of n."""
    check_alpha(alpha)
    if cell_size < 1:
        raise ValueError(f"cell_size must be positive, got {cell_size}")
    rng = np.random.default_rng(seed)
    ref, cur, k, graph = prepared_graph(reference, current, k=k, n_permutations=n_permutations,
                                        max_per_side=max_per_side, min_samples=min_samples, rng=rng)
    m, n = ref.shape[0], cur.shape[0]
    total = m + n
    xr, xc = _normalised(ref), _normalised(cur)
    anchors, ref_cell = reference_cells(xr, cell_size, seed)
    cells = np.concatenate([ref_cell, np.asarray((xc @ anchors.T).argmax(axis=1), dtype=np.int64)])
    labels = np.concatenate([np.zeros(m, dtype=bool), np.ones(n, dtype=bool)])
    need = isolation_need(k, n, total)
    observed = float(_isolated_counts(labels[None, :], graph, need)[0])
    _, null, h = permutation_nulls(lambda size: stratified_labels(cells, labels, size, rng), graph, need, m, n, k,
                                   observed, "isolated", alpha, n_permutations, sequential)
    p_value = sequential_p_value(observed, null, h)
    null_mean, null_sd, null_skew = null_moments(null)
    effect = (observed - null_mean) / n
    n_cur_cell = np.bincount(cells[m:], minlength=anchors.shape[0])
    details = {
        "min_effect": min_effect,
        "k": k,
        "cell_size": cell_size,
        "cells": int(anchors.shape[0]),
        "isolation_need": need,
        "isolated": observed,
        "isolated_null_mean": null_mean,
        "null_sd": null_sd,
        "null_skew": null_skew,
        "z": z_score(observed, null_mean, null_sd),
        "n_permutations": n_permutations,
        "permutations_drawn": int(null.size),
        "sequential_h": h,
        # The window's largest share in one cell: a cell the window crowds is where a stratified null differs most.
        "max_cell_current_share": float(n_cur_cell.max() / n),
        "null_effect_q": (float(np.quantile(null, 1.0 - alpha)) - null_mean) / n,
    }
    is_drift = bool(p_value <= alpha and effect >= min_effect)
    return DriftResult("knn_strat", observed, p_value, alpha, is_drift, effect, m, n, details)
