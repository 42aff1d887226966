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
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from scipy.stats import norm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.drift.calibration import load_intent_pool, new_intent_windows  # noqa: E402
from monitor.drift.knn import DEFAULT_K, isolation_need, neighbour_graph  # noqa: E402
from monitor.drift.null import normal_score, null_moments, tail_p, z_score  # noqa: E402

PERMUTATIONS = 1000


def _score(observed: float, null: np.ndarray) -> float:
    mean, sd, skew = null_moments(null)
    return normal_score(tail_p(z_score(observed, mean, sd), skew))


def trial_scores(ref: np.ndarray, cur: np.ndarray, rs: list[int], seed: int) -> dict[str, float]:
    pooled = np.concatenate([ref, cur])
    m, n = ref.shape[0], cur.shape[0]
    total = m + n
    keys = np.random.default_rng(seed).random((PERMUTATIONS, total))
    perm = keys > np.partition(keys, m - 1, axis=1)[:, m - 1 : m]
    labels = np.concatenate([np.r_[np.zeros(m, bool), np.ones(n, bool)][None], perm])  # row 0: observed
    graph = neighbour_graph(pooled, DEFAULT_K)
    need = isolation_need(DEFAULT_K, n, total)
    isolated = (np.count_nonzero(labels[:, graph], axis=2) >= need) & labels  # (1 + P) x N
    out = {"knn k=6": _score(*_split(isolated.sum(axis=1).astype(float)))}
    isolated_neighbours = np.count_nonzero(isolated[:, graph], axis=2)
    for r in rs:
        stat = np.count_nonzero(isolated & (isolated_neighbours >= r), axis=1).astype(float)
        out[f"isolated with >= {r} isolated neighbours"] = _score(*_split(stat))
    return out


def _split(stat: np.ndarray) -> tuple[float, np.ndarray]:
    return float(stat[0]), stat[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="clinc150", choices=("clinc150", "hwu64"))
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=81)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--r", default="1,2,3", help="comma-separated least isolated neighbours")
    args = parser.parse_args()
    rs = [int(v) for v in args.r.split(",")]
    pool = load_intent_pool(args.dataset)
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    rows: list[dict[str, float]] = []
    for t in range(args.trials):
        ref, cur = new_intent_windows(pool, n_reference=args.n, n_current=args.n, share=args.share, rng=rng)
        rows.append(trial_scores(ref, cur, rs, seed=1000 + t))
        print(f"  trial {t + 1}/{args.trials} ({time.perf_counter() - started:.0f} s): "
              + ", ".join(f"{k} {v:.2f}" for k, v in rows[-1].items()), file=sys.stderr, flush=True)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\n## isolated items with isolated neighbours vs knn — {args.dataset}, share {args.share}, {args.n} per "
          f"side, {args.trials} trials, seed {args.seed} ({when}, load {os.getloadavg()[0]:.2f}, "
          f"{time.perf_counter() - started:.0f} s)\n")
    print("| statistic | score >= 2.33 | score >= 2.58 | mean score |")
    print("|---|---:|---:|---:|")
    table = {}
    for key in rows[0]:
        s = np.array([r[key] for r in rows])
        table[key] = {"share_2.33": float(np.mean(s >= norm.isf(0.01))),
                      "share_2.58": float(np.mean(s >= norm.isf(0.005))), "mean": float(np.mean(np.clip(s, -40, 40)))}
        print(f"| {key} | {table[key]['share_2.33']:.3f} | {table[key]['share_2.58']:.3f} | {table[key]['mean']:.2f} |")
    out = ROOT / "bench" / "results" / f"knn_clustered_{args.dataset}_{args.share}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "when": when, "table": table}, indent=1))


if __name__ == "__main__":
    main()
