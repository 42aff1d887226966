"""Choosing the `novelty` detector's constants (k, level) on CLINC150 only (issue #16; HWU64 stays held out).

    python bench/novelty_constants.py --trials 40

For each trial of drift_power's cells (quiet, cyclic quiet, 10% / 20% new intents, 1,000 per side) the share of
trials whose raw novelty p-value is <= 0.01 (no calibration: the constants should give a test that is exact on
i.i.d. windows and blind to the cyclic reweighting before λ does anything), and the mean normal score.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.drift_power import cyclic_windows  # noqa: E402
from monitor.drift.calibration import load_intent_pool, new_intent_windows  # noqa: E402
from monitor.drift.novelty import novelty_test  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="clinc150", choices=("clinc150",))
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--k", type=int, nargs="*", default=[1, 3, 5])
    parser.add_argument("--level", type=float, nargs="*", default=[0.01, 0.02, 0.05, 0.1, 0.2])
    args = parser.parse_args()
    pool = load_intent_pool(args.dataset)
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    print("| cell | k | level | share p<=0.01 | mean score |\n|---|---:|---:|---:|---:|")
    for label, share in (("quiet", 0.0), ("cyclic quiet", None), ("10% new", 0.1), ("20% new", 0.2)):
        hits: dict[tuple[int, float], list[tuple[bool, float]]] = {}
        for t in range(args.trials):
            if share is None:
                ref, cur = cyclic_windows(pool, args.n, rng, seed=t)
            else:
                ref, cur = new_intent_windows(pool, n_reference=args.n, n_current=args.n, share=share, rng=rng)
            for k in args.k:
                for level in args.level:
                    res = novelty_test(ref, cur, k=k, level=level, seed=t)
                    hits.setdefault((k, level), []).append((bool(res.p_value <= 0.01), float(res.details["z"])))
        for (k, level), v in hits.items():
            print(f"| {label} | {k} | {level} | {np.mean([a for a, _ in v]):.2f} | {np.mean([b for _, b in v]):.2f} |",
                  flush=True)
    print(f"Total {time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
