"""Choosing the `knn` detector's k and statistic on CLINC150 only (issue #16; HWU64 held out, Banking77 reserved).

    python bench/knn_constants.py --trials 40 --share 0.1 --seed 31
    python bench/knn_constants.py --trials 80 --share 0.1 --seed 41
    python bench/knn_constants.py --trials 100 --share 0 --seed 32
    python bench/knn_constants.py --trials 100 --share 0 --seed 34 --n-reference 2000 --n-current 250
    python bench/knn_constants.py --trials 40 --share 0.1 --seed 33 --n-reference 2000 --n-current 250

Windows as in bench/drift_power.py (`new_intent_windows`: the current window holds `share` of queries from 10
intents the reference never saw, of domains that keep other intents in it). Every statistic of a trial is read
from the same neighbour graphs and the same 1,000 label permutations, so the columns compare them on the same
windows. For each k: the isolated count at every threshold j (current items with >= j of k current-side
neighbours; only j whose chance tail is <= 0.3), the j `isolation_need` picks (ISOLATION_TAIL), and a
higher-criticism max over j (each count standardised by the mean and sd of its permutation null, observed
labelling included so the max's permutation null stays exact; only j with chance tail <= 0.2 and null mean >= 2).
Each statistic's evidence is the normal score the calibration reads (z against the permutation null, Pearson III
tail, `monitor/drift/null.py`). Printed: the share of trials with a score >= Φ⁻¹(0.99) (alpha 0.01 alone) and
>= Φ⁻¹(0.995) (what the better of two default rows needs under Benjamini-Hochberg at 0.01), and the mean score.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.stats import binom, norm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.score_table import null_score, permutation_labels  # noqa: E402
from monitor.drift.calibration import load_intent_pool, new_intent_windows  # noqa: E402
from monitor.drift.knn import isolation_need, neighbour_graph  # noqa: E402

PERMUTATIONS = 1000


def trial_scores(ref: np.ndarray, cur: np.ndarray, ks: list[int], seed: int) -> dict[str, float]:
    """Scores of every statistic on one window (row 0 of the label matrix is the observed labelling)."""
    pooled = np.concatenate([ref, cur])
    m, n = ref.shape[0], cur.shape[0]
    total = m + n
    labels = permutation_labels(m, n, PERMUTATIONS, seed)  # row 0: observed
    cols = np.nonzero(labels)[1].reshape(labels.shape[0], n)
    q = (n - 1) / (total - 1)
    out: dict[str, float] = {}
    for k in ks:
        graph = neighbour_graph(pooled, k)
        # Current-side neighbours of each current item, per labelling: (1 + PERMUTATIONS) x n.
        c = np.count_nonzero(labels[np.arange(labels.shape[0])[:, None, None], graph[cols]], axis=2)
        counts = np.stack([(c >= j).sum(axis=1) for j in range(k + 1)], axis=1).astype(np.float64)
        for j in range(1, k + 1):
            if float(binom.sf(j - 1, k, q)) <= 0.3:
                out[f"k={k} j={j}"] = null_score(counts[0, j], counts[1:, j])
        need = isolation_need(k, n, total)
        out[f"k={k} j=need({need})"] = null_score(counts[0, need], counts[1:, need])
        mean, sd = counts.mean(axis=0), counts.std(axis=0, ddof=1)
        js = [j for j in range(1, k + 1) if float(binom.sf(j - 1, k, q)) <= 0.2 and sd[j] > 0 and mean[j] >= 2.0]
        if js:
            hc = ((counts[:, js] - mean[js]) / sd[js]).max(axis=1)
            out[f"k={k} max over j"] = null_score(hc[0], hc[1:])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--share", type=float, default=0.1, help="share of the window from new intents (0 = quiet)")
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument("--n-reference", type=int, default=1000)
    parser.add_argument("--n-current", type=int, default=1000)
    parser.add_argument("--k", default="4,5,6,7,8,10", help="comma-separated k values")
    args = parser.parse_args()
    ks = [int(v) for v in args.k.split(",")]
    pool = load_intent_pool("clinc150")
    rng = np.random.default_rng(args.seed)
    rows: list[dict[str, float]] = []
    for t in range(args.trials):
        ref, cur = new_intent_windows(pool, n_reference=args.n_reference, n_current=args.n_current,
                                      share=args.share, rng=rng)
        rows.append(trial_scores(ref, cur, ks, seed=1000 + t))
        print(f"  trial {t + 1}/{args.trials}", file=sys.stderr, flush=True)
    print(f"CLINC150, share {args.share}, {args.n_reference} vs {args.n_current}, {args.trials} trials, "
          f"seed {args.seed}\n")
    print("| statistic | score >= 2.33 | score >= 2.58 | mean score |")
    print("|---|---:|---:|---:|")
    for key in rows[0]:
        s = np.array([r[key] for r in rows])
        print(f"| {key} | {np.mean(s >= norm.isf(0.01)):.3f} | {np.mean(s >= norm.isf(0.005)):.3f} | "
              f"{np.mean(np.clip(s, -40, 40)):.2f} |")


if __name__ == "__main__":
    main()
