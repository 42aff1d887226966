"""Isolated items that have isolated neighbours: `knn`'s count restricted to groups (issue #16, brief s10-16).

    python bench/knn_clustered.py --dataset clinc150 --share 0.1 --trials 60      # where r is CHOSEN
    python bench/knn_clustered.py --dataset clinc150 --share 0 --trials 200
    python bench/knn_clustered.py --dataset hwu64 --share 0.1 --trials 40 --r <chosen>    # held out, once

`knn` counts current items whose k = 6 neighbours are all current (`isolation_need`). By chance about n / 2^6 of
them are isolated, scattered one by one; a new intent arrives as a group (10% of 1,000 from 10 intents is ~10
queries each) whose isolated items are each other's neighbours. Counting only isolated items with at least r
isolated neighbours keeps most of a group and drops most chance singletons. The graph is `knn`'s (pooled,
label-blind), the statistic a function of the labels, so permuting them stays exact; the score is the same normal
score (z against 1,000 permutations, Pearson III tail), k = 6 `knn` scored on the same windows and permutations.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.score_table import null_score, permutation_labels, run, window_args  # noqa: E402
from monitor.drift.knn import DEFAULT_K, isolation_need, neighbour_graph  # noqa: E402

PERMUTATIONS = 1000


def trial_scores(ref: np.ndarray, cur: np.ndarray, rs: list[int], seed: int) -> dict[str, float]:
    pooled = np.concatenate([ref, cur])
    m, n = ref.shape[0], cur.shape[0]
    total = m + n
    labels = permutation_labels(m, n, PERMUTATIONS, seed)  # row 0: observed
    graph = neighbour_graph(pooled, DEFAULT_K)
    need = isolation_need(DEFAULT_K, n, total)
    isolated = (np.count_nonzero(labels[:, graph], axis=2) >= need) & labels  # (1 + P) x N
    out = {"knn k=6": null_score(*_split(isolated.sum(axis=1).astype(float)))}
    isolated_neighbours = np.count_nonzero(isolated[:, graph], axis=2)
    for r in rs:
        stat = np.count_nonzero(isolated & (isolated_neighbours >= r), axis=1).astype(float)
        out[f"isolated with >= {r} isolated neighbours"] = null_score(*_split(stat))
    return out


def _split(stat: np.ndarray) -> tuple[float, np.ndarray]:
    return float(stat[0]), stat[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    window_args(parser, trials=60, seed=81)
    parser.add_argument("--r", default="1,2,3", help="comma-separated least isolated neighbours")
    args = parser.parse_args()
    rs = [int(v) for v in args.r.split(",")]
    run(args, "knn_clustered", "isolated items with isolated neighbours vs knn", "statistic",
        lambda ref, cur, seed: trial_scores(ref, cur, rs, seed=seed))

if __name__ == "__main__":
    main()
