"""Current items in current-only *clusters* of the pooled sample, under a permutation null (issue #16, brief s10-16,
third idea).

    python bench/cluster_isolation.py --dataset clinc150 --share 0.1 --trials 40     # where the size is CHOSEN
    python bench/cluster_isolation.py --dataset clinc150 --share 0 --trials 100
    python bench/cluster_isolation.py --dataset hwu64 --share 0.1 --trials 40 --sizes <chosen>   # held out, once

`knn` counts current items whose own k = 6 neighbours are (nearly) all current. A new intent arrives as a group of
~10 queries (10% of 1,000 from 10 intents); on CLINC150 only ~40% of their items are isolated at k = 6 (their
neighbour lists spill into neighbouring known intents; `python bench/knn_lexical.py --diagnose 20`). Here the unit
is a group instead: the pooled sample (reference + window, label-blind: Ward clustering of the unit MiniLM vectors
into N / s clusters) is cut into groups of about s items, and the statistic counts the current items of clusters
whose current count is improbable by chance (binomial tail at the chance share n / N <= 0.02, `ISOLATION_TAIL`).
The clustering is a function of the unlabelled pool, so permuting the side labels over it is an exact test; its
evidence is the same normal score as `knn`'s (z against 1,000 permutations, Pearson III tail). `knn` (k = 6) is
scored on the same windows and the same permutations. Printed: share with score >= 2.33 and >= 2.58, mean score.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.stats import binom
from sklearn.cluster import AgglomerativeClustering

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.score_table import null_score, permutation_labels, run, window_args  # noqa: E402
from monitor.drift.knn import DEFAULT_K, ISOLATION_TAIL, isolation_need, neighbour_graph  # noqa: E402

PERMUTATIONS = 1000


def cluster_needs(sizes: np.ndarray, q: float) -> np.ndarray:
    """Per cluster, the fewest current items whose binomial tail at the chance share q is <= ISOLATION_TAIL
    (size + 1, i.e. never, when even all-current is not that improbable)."""
    out = np.empty(sizes.size, dtype=np.int64)
    for i, size in enumerate(sizes):
        js = [j for j in range(1, int(size) + 1) if float(binom.sf(j - 1, int(size), q)) <= ISOLATION_TAIL]
        out[i] = js[0] if js else int(size) + 1
    return out


def trial_scores(ref: np.ndarray, cur: np.ndarray, sizes: list[int], seed: int) -> dict[str, float]:
    pooled = np.concatenate([ref, cur]).astype(np.float64)
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    m, n = ref.shape[0], cur.shape[0]
    total = m + n
    labels = permutation_labels(m, n, PERMUTATIONS, seed)  # row 0: observed
    out: dict[str, float] = {}
    graph = neighbour_graph(pooled, DEFAULT_K)
    need = isolation_need(DEFAULT_K, n, total)
    iso = np.count_nonzero((np.count_nonzero(labels[:, graph], axis=2) >= need) & labels, axis=1).astype(float)
    out["knn k=6"] = null_score(iso[0], iso[1:])
    q = n / total
    for s in sizes:
        assign = AgglomerativeClustering(n_clusters=max(2, total // s), linkage="ward").fit_predict(pooled)
        n_clusters = int(assign.max()) + 1
        onehot = np.zeros((total, n_clusters), dtype=np.float32)
        onehot[np.arange(total), assign] = 1.0
        current = labels.astype(np.float32) @ onehot  # (1 + P) x clusters: current items per cluster
        flagged = current >= cluster_needs(np.bincount(assign, minlength=n_clusters), q)[None, :]
        stat = (current * flagged).sum(axis=1)
        out[f"clusters s={s}"] = null_score(stat[0], stat[1:])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    window_args(parser, trials=40, seed=71)
    parser.add_argument("--sizes", default="5,8,12,20", help="comma-separated mean cluster sizes s")
    args = parser.parse_args()
    sizes = [int(v) for v in args.sizes.split(",")]
    run(args, "cluster_isolation", "current items in improbable clusters vs knn", "statistic",
        lambda ref, cur, seed: trial_scores(ref, cur, sizes, seed=seed))

if __name__ == "__main__":
    main()
