"""The trial loop the one-statistic drift benches share (bench/cluster_isolation.py, knn_clustered.py, knn_multik.py).

Draws `--trials` pairs of windows as bench/drift_power.py does (`new_intent_windows`: the reference from the usual
intents, the window with `--share` of it from the held-back ones, `--n` per side), scores each pair with every
variant the bench compares, and prints per variant the share of windows with score >= Φ⁻¹(0.99) = 2.33 (alpha
0.01 alone), >= Φ⁻¹(0.995) = 2.58 (the better of two default rows under BH at 0.01) and the mean score; the table
also goes to bench/results/<name>_<dataset>_<share>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from scipy.stats import norm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.drift.calibration import load_intent_pool, new_intent_windows  # noqa: E402
from monitor.drift.null import normal_score, null_moments, tail_p, z_score  # noqa: E402

Scores = Callable[[np.ndarray, np.ndarray, int], dict[str, float]]


def permutation_labels(m: int, n: int, permutations: int, seed: int) -> np.ndarray:
    """(1 + permutations) x (m + n) side labels, True = current: row 0 the observed labelling (the reference
    first), each other row a uniformly random one with n current rows."""
    keys = np.random.default_rng(seed).random((permutations, m + n))
    perm = keys > np.partition(keys, m - 1, axis=1)[:, m - 1 : m]
    return np.concatenate([np.r_[np.zeros(m, bool), np.ones(n, bool)][None], perm])


def null_score(observed: float, null: np.ndarray) -> float:
    """The observed statistic's normal score against its permutation null (monitor/drift/null.py's rule)."""
    mean, sd, skew = null_moments(null)
    return normal_score(tail_p(z_score(observed, mean, sd), skew))


def window_args(parser: argparse.ArgumentParser, *, trials: int, seed: int) -> None:
    """The window options every such bench takes."""
    parser.add_argument("--dataset", default="clinc150", choices=("clinc150", "hwu64"))
    parser.add_argument("--trials", type=int, default=trials)
    parser.add_argument("--share", type=float, default=0.1, help="share of the window from new intents (0 = quiet)")
    parser.add_argument("--seed", type=int, default=seed)
    parser.add_argument("--n", type=int, default=1000)


def run(args: argparse.Namespace, name: str, title: str, first_column: str, scores: Scores) -> None:
    """`scores(reference, current, seed)` -> {variant: normal score} for one pair of windows."""
    pool = load_intent_pool(args.dataset)
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    rows: list[dict[str, float]] = []
    for t in range(args.trials):
        ref, cur = new_intent_windows(pool, n_reference=args.n, n_current=args.n, share=args.share, rng=rng)
        rows.append(scores(ref, cur, 1000 + t))
        print(f"  trial {t + 1}/{args.trials} ({time.perf_counter() - started:.0f} s): "
              + ", ".join(f"{k} {v:.2f}" for k, v in rows[-1].items()), file=sys.stderr, flush=True)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\n## {title} — {args.dataset}, share {args.share}, {args.n} per side, {args.trials} trials, seed "
          f"{args.seed} ({when}, load {os.getloadavg()[0]:.2f}, {time.perf_counter() - started:.0f} s)\n")
    print(f"| {first_column} | score >= 2.33 | score >= 2.58 | mean score |")
    print("|---|---:|---:|---:|")
    table = {}
    for key in rows[0]:
        s = np.array([r[key] for r in rows])
        table[key] = {"share_2.33": float(np.mean(s >= norm.isf(0.01))),
                      "share_2.58": float(np.mean(s >= norm.isf(0.005))), "mean": float(np.mean(np.clip(s, -40, 40)))}
        print(f"| {key} | {table[key]['share_2.33']:.3f} | {table[key]['share_2.58']:.3f} | {table[key]['mean']:.2f} |")
    out = ROOT / "bench" / "results" / f"{name}_{args.dataset}_{args.share}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "when": when, "table": table}, indent=1))
