"""Choosing the `novelty` detector's constants (cell size, level) on CLINC150 only (issue #16; HWU64 held out).

    python bench/novelty_constants.py --trials 100 --cell quiet
    python bench/novelty_constants.py --trials 40 --cell 0.1
    python bench/novelty_constants.py --trials 20 --cell cyclic

Windows as in bench/drift_power.py (1,000 per side; `cyclic` = a 5-minute slot against a day of 1,000
events whose intent shares swing ±50%, drawn without repeating a query: `cyclic_windows_distinct`). Prints,
per (cell_size, level), the share of trials whose *exact, uncalibrated* novelty p-value is <= 0.01 / 0.005 /
0.05 and the mean and sd of the normal score: the constants should keep the level on quiet and on cyclic
(reweighted) windows before any λ, and find 10% new intents.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.drift_power import cyclic_windows_distinct  # noqa: E402
from monitor.drift.calibration import load_intent_pool, new_intent_windows  # noqa: E402
from monitor.drift.novelty import novelty_test  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--cell", default="0.1", help="'quiet', 'cyclic' or a share of new intents")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    pool = load_intent_pool("clinc150")
    rng = np.random.default_rng(args.seed)
    res: dict[tuple[int | None, float], list[tuple[float, float]]] = {}
    for t in range(args.trials):
        if args.cell == "cyclic":
            ref, cur = cyclic_windows_distinct(pool, 1000, 1000, rng, seed=t)
        else:
            share = 0.0 if args.cell == "quiet" else float(args.cell)
            ref, cur = new_intent_windows(pool, n_reference=1000, n_current=1000, share=share, rng=rng)
        for cell_size in (None, 25, 50, 100):
            for level in (0.05, 0.1):
                r = novelty_test(ref, cur, cell_size=cell_size, level=level, seed=t)
                res.setdefault((cell_size, level), []).append((float(r.p_value or 1.0), float(r.details["z"])))
    print("| cell | cell_size | level | p<=0.01 | p<=0.005 | p<=0.05 | mean score | sd |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for (cell_size, level), v in res.items():
        p, z = np.array([a for a, _ in v]), np.array([b for _, b in v])
        print(f"| {args.cell} | {cell_size} | {level} | {np.mean(p <= 0.01):.2f} | {np.mean(p <= 0.005):.2f} | "
              f"{np.mean(p <= 0.05):.2f} | {z.mean():.2f} | {z.std():.2f} |")


if __name__ == "__main__":
    main()
