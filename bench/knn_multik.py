"""A max over k of `knn`'s isolated counts, under one permutation null (issue #16, brief s10-16, second idea).

    python bench/knn_multik.py --dataset clinc150 --trials 40 --share 0.1     # where the set of k is CHOSEN
    python bench/knn_multik.py --dataset clinc150 --trials 100 --share 0
    python bench/knn_multik.py --dataset hwu64 --trials 40 --share 0.1 --sets 6 <chosen>   # held out, once

`knn` counts current items whose k = 6 nearest pooled items (MiniLM cosine) are nearly all current
(monitor/drift/knn.py, `isolation_need`). A new intent that arrives as a tight group of a few queries is isolated at
small k; one whose queries sit among known intents may still have a current-only majority at larger k. A fixed k
bets on one scale. Here, for a set of k (e.g. 3, 6, 12), every count is standardised by its own permutation null
(mean and sd over the same 1,000 label permutations, the observed labelling included so the max's null stays exact)
and the statistic is the largest standardised count; its null is the max over the same permutations, and its
evidence is the normal score the calibration reads (Pearson III tail on the null's moments, `monitor/drift/null.py`).
Windows as bench/drift_power.py draws them (`new_intent_windows`, 1,000 per side). Printed: share with score >=
Φ⁻¹(0.99) = 2.33 (alpha 0.01 alone) and >= Φ⁻¹(0.995) = 2.58 (the better of two default rows under BH at 0.01),
and the mean score, for each single k and each set.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.score_table import null_score, permutation_labels, run, window_args  # noqa: E402
from monitor.drift.knn import isolation_need, neighbour_graph  # noqa: E402

PERMUTATIONS = 1000
DEFAULT_SETS = ("6", "4,6,8", "3,6,12", "6,12", "4,8", "3,6", "6,9,12")


def sorted_graph(pooled: np.ndarray, k: int) -> np.ndarray:
    """(N x k) neighbours, nearest first, so that column prefixes are the graphs of every smaller k."""
    graph = neighbour_graph(pooled, k)
    x = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    sims = np.einsum("id,ikd->ik", x, x[graph])
    return np.take_along_axis(graph, np.argsort(-sims, axis=1, kind="stable"), axis=1)


def trial_scores(ref: np.ndarray, cur: np.ndarray, sets: list[tuple[int, ...]], seed: int) -> dict[str, float]:
    pooled = np.concatenate([ref, cur])
    m, n = ref.shape[0], cur.shape[0]
    total = m + n
    labels = permutation_labels(m, n, PERMUTATIONS, seed)  # row 0: observed
    cols = np.nonzero(labels)[1].reshape(labels.shape[0], n)
    ks = sorted({k for s in sets for k in s})
    graph = sorted_graph(pooled, max(ks))
    # Current-side neighbours among the first k, for each labelling and current item, via a running sum.
    hits = labels[np.arange(labels.shape[0])[:, None, None], graph[cols]]  # (1 + P) x n x kmax
    cum = np.cumsum(hits, axis=2)
    z: dict[int, np.ndarray] = {}
    for k in ks:
        counts = np.count_nonzero(cum[:, :, k - 1] >= isolation_need(k, n, total), axis=1).astype(np.float64)
        sd = counts.std(ddof=1)
        z[k] = (counts - counts.mean()) / (sd if sd > 0 else 1.0)
    out: dict[str, float] = {}
    for s in sets:
        stat = np.max(np.stack([z[k] for k in s]), axis=0)
        out[",".join(map(str, s))] = null_score(stat[0], stat[1:])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    window_args(parser, trials=40, seed=61)
    parser.add_argument("--sets", nargs="*", default=list(DEFAULT_SETS), help="comma-separated k per set")
    args = parser.parse_args()
    sets = [tuple(int(v) for v in s.split(",")) for s in args.sets]
    run(args, "knn_multik", "max over k of knn's standardised isolated counts", "k",
        lambda ref, cur, seed: trial_scores(ref, cur, sets, seed=seed))


if __name__ == "__main__":
    main()
