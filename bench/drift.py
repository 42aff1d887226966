"""Drift detector benchmark: one command, `python bench/drift.py`, prints tables.

1. MMD test cost at 1k, 10k and 100k per side (384-d unit vectors, 1000 permutations): wall time
   and peak RSS, each size in a fresh subprocess so ru_maxrss is that size's own peak.
2. Calibration and detection on real sentence embeddings (MiniLM on the shipped queries): windows
   of N per side where a share (0%, 5%, 10%, 20%, 50%) of the current window is a new topic
   (health_fitness or billing_support, alternating) and the rest, like the reference, is drawn
   from four other topics. For each method: detection rate over trials, mean statistic and
   mean effect size, with every method at its default settings.

Options: --trials T (default 20), --n N (default 1000 per side), --skip-timing, --skip-power.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TIMING_SIZES = (1_000, 10_000, 100_000)
SHARES = (0.0, 0.05, 0.10, 0.20, 0.50)
METHODS = ("mmd", "classifier", "evidently_model", "evidently_ratio", "evidently_distance", "evidently_mmd")


def _unit(rng: np.random.Generator, n: int, dim: int = 384) -> np.ndarray:
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def child_timing(n: int) -> None:
    """Run in a subprocess: time one MMD test at n per side and report peak RSS."""
    from monitor.drift.mmd import mmd_test

    rng = np.random.default_rng(0)
    ref, cur = _unit(rng, n), _unit(rng, n)
    data_mb = (ref.nbytes + cur.nbytes) / 2**20
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mmd_test(ref[:100], cur[:100], seed=0, n_permutations=10)  # warm-up (imports, BLAS init)
    start = time.perf_counter()
    result = mmd_test(ref, cur, seed=0, n_permutations=1000)
    elapsed = time.perf_counter() - start
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "n": n,
                "seconds": elapsed,
                "peak_rss_mb": rss_peak,
                "rss_before_mb": rss_before,
                "input_mb": data_mb,
                "path": result.details["path"],
                "p_value": result.p_value,
            }
        )
    )


def timing_table() -> None:
    print("\n## MMD cost (384-d, 1000 permutations, default settings)\n")
    print("| per side | path  | time (s) | peak RSS (MB) | RSS before test (MB) | input arrays (MB) |")
    print("|---------:|-------|---------:|--------------:|---------------------:|------------------:|")
    for n in TIMING_SIZES:
        out = subprocess.run(
            [sys.executable, __file__, "--child-timing", str(n)], capture_output=True, text=True, check=True
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"| {n:>8,} | {row['path']:5s} | {row['seconds']:8.2f} | {row['peak_rss_mb']:13.0f} |"
            f" {row['rss_before_mb']:20.0f} | {row['input_mb']:17.0f} |",
            flush=True,
        )


def power_table(trials: int, n: int) -> None:
    from monitor.drift import get_detector
    from monitor.drift.calibration import embed_texts, load_queries, topic_mix_windows

    pools = load_queries()
    t0 = time.perf_counter()
    vectors = embed_texts([text for texts in pools.values() for text in texts])
    bounds = np.cumsum([0] + [len(texts) for texts in pools.values()])
    emb = {topic: vectors[bounds[i] : bounds[i + 1]] for i, topic in enumerate(pools)}
    print(f"\n(embedded {sum(len(v) for v in pools.values())} queries in {time.perf_counter() - t0:.0f} s)")
    base = np.concatenate([emb[t] for t in ("programming", "cooking", "travel", "personal_finance")])
    new_topics = ("health_fitness", "billing_support")

    print(f"\n## Detection on real query embeddings ({n} per side, {trials} trials per cell, defaults)\n")
    print("| new-topic share | method | drift rate | mean statistic | mean effect | max effect | s/call |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(2024)
    for share in SHARES:
        windows = [
            topic_mix_windows(base, emb[new_topics[t % 2]], n_reference=n, n_current=n, share=share, rng=rng)
            for t in range(trials)
        ]
        for name in METHODS:
            detector = get_detector(name)
            results, spent = [], 0.0
            for t, (ref, cur) in enumerate(windows):
                start = time.perf_counter()
                results.append(detector(ref, cur, seed=t))
                spent += time.perf_counter() - start
            rate = np.mean([r.is_drift for r in results])
            stat = np.mean([r.statistic for r in results])
            effects = [r.effect_size for r in results if r.effect_size is not None]
            mean_eff = f"{np.mean(effects):.3f}" if effects else "-"
            max_eff = f"{np.max(effects):.3f}" if effects else "-"
            print(
                f"| {share:.0%} | {name} | {rate:.2f} | {stat:.4f} | {mean_eff} | {max_eff} |"
                f" {spent / trials:.2f} |",
                flush=True,
            )

    print(f"\n## Quiet windows: effect size by window size ({trials} trials, same distribution)\n")
    print(
        "| per side | MMD effect mean / max | classifier effect mean / max | MMD fired | classifier fired |"
    )
    print("|---:|---:|---:|---:|---:|")
    for size in (250, 1000, 3000):
        mmd_e: list[float] = []
        clf_e: list[float] = []
        mmd_f = clf_f = 0
        for t in range(trials):
            disjoint = 2 * size <= base.shape[0]
            ref, cur = topic_mix_windows(
                base, base, n_reference=size, n_current=size, share=0.0, rng=rng, disjoint=disjoint
            )
            a, b = get_detector("mmd")(ref, cur, seed=t), get_detector("classifier")(ref, cur, seed=t)
            mmd_e.append(float(a.effect_size or 0.0))
            clf_e.append(float(b.effect_size or 0.0))
            mmd_f += a.is_drift
            clf_f += b.is_drift
        print(
            f"| {size} | {np.mean(mmd_e):.3f} / {np.max(mmd_e):.3f}"
            f" | {np.mean(clf_e):.3f} / {np.max(clf_e):.3f}"
            f" | {mmd_f}/{trials} | {clf_f}/{trials} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--skip-power", action="store_true")
    parser.add_argument("--child-timing", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_timing:
        child_timing(args.child_timing)
        return
    print("# driftloop drift benchmark")
    if not args.skip_timing:
        timing_table()
    if not args.skip_power:
        power_table(args.trials, args.n)


if __name__ == "__main__":
    main()
