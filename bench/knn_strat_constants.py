"""Choosing `knn_strat`'s cell size on CLINC150 only (issue #16; HWU64 held out, Banking77 reserved).

    python bench/knn_strat_constants.py --cell new10 --sizes 2,3,4,5 --trials 40 --seed 7
    python bench/knn_strat_constants.py --cell nore --sizes 2,3,4,5 --trials 40 --seed 7
    python bench/knn_strat_constants.py --cell quiet --sizes 2,3,4,5 --trials 40 --seed 7

Windows as in bench/drift_power.py: `new10` = 1,000 per side with 10% of the window from 10 intents the reference
never saw (`new_intent_windows`); `quiet` = both from the usual intents; `nore` = "cyclic quiet, no repeats" (a
1,500-event day of daily-cycle traffic as the reference, a 5-minute slot of 1,000 events, no query in both). Each
window is judged by `knn` and by `knn_strat` at each cell size, uncalibrated; printed: the mean normal score (what
the calibration reads) and the share of windows with a score >= Φ⁻¹(0.99) and >= Φ⁻¹(0.995). The cell size is good
when the 10% score stays near `knn`'s while the cyclic score falls towards the quiet one.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.drift_power import cyclic_windows_distinct  # noqa: E402
from monitor.drift.calibration import load_intent_pool, new_intent_windows  # noqa: E402
from monitor.drift.knn import knn_test  # noqa: E402
from monitor.drift.knn_strat import knn_strat_test  # noqa: E402
from monitor.drift.thresholds import result_score  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cell", choices=("new10", "quiet", "nore"), default="new10")
    parser.add_argument("--sizes", default="2,3,4,5,10", help="comma-separated cell sizes")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    pool = load_intent_pool("clinc150")
    rng = np.random.default_rng(args.seed)
    scores: dict[str, list[float]] = {"knn": [], **{f"knn_strat cell {s}": [] for s in sizes}}
    started = time.perf_counter()
    for t in range(args.trials):
        if args.cell == "nore":
            ref, cur, _ = cyclic_windows_distinct(pool, 1500, 1000, rng, seed=t)
        else:
            ref, cur = new_intent_windows(pool, n_reference=1000, n_current=1000,
                                          share=0.1 if args.cell == "new10" else 0.0, rng=rng)
        scores["knn"].append(result_score(knn_test(ref, cur, seed=t)))
        for s in sizes:
            scores[f"knn_strat cell {s}"].append(result_score(knn_strat_test(ref, cur, seed=t, cell_size=s)))
    print(f"clinc150, {args.cell}, {args.trials} trials, seed {args.seed} ({time.perf_counter() - started:.0f} s)")
    print("| detector | mean score | score >= 2.33 | score >= 2.58 |\n|---|---:|---:|---:|")
    for name, values in scores.items():
        v = np.array(values)
        print(f"| {name} | {v.mean():.2f} | {np.mean(v >= 2.326):.2f} | {np.mean(v >= 2.576):.2f} |")


if __name__ == "__main__":
    main()
