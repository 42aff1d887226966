"""Drift decisions at their defaults on real intent queries: one command, prints the table of issue #16.

    python bench/drift_power.py                       # held-out HWU64, 1,000 per side, 20 trials per cell
    python bench/drift_power.py --dataset clinc150 --trials 40

Set-up (issue #16): the bot's usual traffic is every intent of the dataset but 10; the reference is
drawn from it. The current window is the same traffic with a share (10%, 20%, 40%) of queries from
the 10 held-back intents, each of a domain that keeps other intents in the reference (neighbouring
intents, not unrelated topics). Windows share no rows. "quiet" draws both windows from the usual
intents. "cyclic quiet" is non-stationary quiet traffic: every intent's share follows a daily cycle
(±50%, own phase); the reference spans a whole day in arrival order (8 windows' worth of events) and
the current window is a 5-minute slot at a random hour, so its topic mix differs from the day's
average without anything new. "cyclic quiet, no repeats" is the same cycle, for --dataset hwu64 from the
11,033-query `hwu64_full` pool: a day of `--reference-windows` (8) windows' worth of events, so calibration blocks
are window-sized, and no query in both reference and window (CLINC150 keeps a
1,500-event day from its extract). The last column repeats 40% at 300 events per side (reference too).

The share cells (quiet, 10/20/40% new) draw from `--pool` (for hwu64 the 11,033-query `hwu64_full`, the whole
public set: the 3,503-query extract cannot hold a reference, a window and the trailing sample the onset row needs).
Each such trial also draws `--onset` rows (default 4x the window, the pipeline's trailing sample) of the usual
intents that neither window holds: the quiet hours before the window.

Rows (each trial computes every statistic once and applies each decision rule to it):
- defaults: what the pipeline decides at its defaults, one Benjamini-Hochberg family at 0.01 over the window's rows
  (one segment, one field): the reference rows, the default `drift_methods` (monitor/pipeline/config.py), each
  calibrated on the trial's reference (monitor/drift/thresholds.py) together, as the pipeline does, and the onset
  row (monitor/drift/onset.py: `knn` between the window and the trailing sample, at λ 1 — what the onset history's
  genomic control gives on stationary traffic; the quiet cell's own λ is printed). The window is flagged when any
  row is. The cyclic cells simulate no trailing hours, so they show '-' here: their onset row is
  bench/quiet_month.py's (a month of 5-minute windows whose mix moves with the hour);
- reference rows: the same without the onset row (the pipeline with `drift_onset_seconds` null);
- candidate method sets (`mmd + knn`, the defaults until 2026-12-05; `novelty` with `mmd` and/or `knn`; `knn_strat`
  with `mmd` and with `mmd + knn`), each
  calibrated as a set (the stationarity gate is shared within a set) and judged by BH at 0.01 the same way;
- `knn`, `knn_strat`, `mmd`, `classifier`, `novelty` alone, calibrated, at alpha 0.01; `novelty`'s exact p-value and
  `knn_strat`'s permutation p-value at 0.01;
- `mmd` at the old fixed defaults (p <= 0.01 AND effect >= 0.05) and plain `mmd` at alpha 0.05;
- Evidently's `model` method at its defaults, in the same run.
Figures are the share of trials flagged. CLINC150 was used to choose constants; HWU64, the default, was not.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.drift import get_detector, refcache, thresholds  # noqa: E402
from monitor.drift.budget import bh_decisions  # noqa: E402
from monitor.drift.calibration import (  # noqa: E402
    IntentPool,
    cyclic_disjoint_sample,
    cyclic_sample,
    load_intent_pool,
    new_intent_windows,
)
from monitor.drift.null import deflated_p, inflation  # noqa: E402
from monitor.drift.onset import TRAILING_FACTOR  # noqa: E402
from monitor.drift.thresholds import apply_calibration, calibrate_methods  # noqa: E402
from monitor.pipeline.config import ProjectConfig  # noqa: E402

DEFAULT_METHODS = tuple(ProjectConfig().drift_methods)
SETS = {" + ".join(s): s for s in (("mmd", "knn"), ("novelty", "mmd"), ("novelty", "knn"), ("novelty", "mmd", "knn"),
                                    ("mmd", "knn", "knn_strat"), ("mmd", "knn_strat"))}
DEFAULTS = f"defaults|reference rows ({' + '.join(DEFAULT_METHODS)}) + onset row, BH at 0.01"
REFERENCE_ROWS = f"reference rows|{' + '.join(DEFAULT_METHODS)}, calibrated, BH at 0.01"
ONSET_ROW = f"onset row|knn vs the trailing {TRAILING_FACTOR}x window, λ 1, alpha 0.01"
ROWS = (
    tuple(DEFAULTS.split("|")),
    tuple(REFERENCE_ROWS.split("|")),
    tuple(ONSET_ROW.split("|")),
    *((name, "set, calibrated, BH at 0.01") for name in SETS),
    ("novelty", "calibrated, alpha 0.01"),
    ("novelty", "exact p <= 0.01, uncalibrated"),
    ("knn", "calibrated, alpha 0.01"),
    ("knn_strat", "calibrated, alpha 0.01"),
    ("knn_strat", "permutation p <= 0.01, uncalibrated"),
    ("mmd", "calibrated, alpha 0.01"),
    ("classifier", "calibrated, alpha 0.01"),
    ("mmd", "old defaults (p<=0.01, effect>=0.05)"),
    ("mmd", "alpha 0.05, no floor"),
    ("evidently_model", "Evidently defaults"),
)
CALIBRATED = ("mmd", "knn", "classifier", "novelty", "knn_strat")

_plain_block_scores = thresholds._block_scores
_block_memo: dict[tuple[object, ...], np.ndarray] = {}


def _memo_block_scores(method: str, ref: np.ndarray, blocks: list[np.ndarray], rest_size: int, seed: int,
                       bandwidth: float | None = None) -> np.ndarray:
    """thresholds._block_scores, memoised within a trial: the method sets are calibrated separately (each shares
    its own stationarity gate, as in the pipeline), but a method's block scores on one reference are the same
    numbers in every set, and MMD's are most of the run's time."""
    key = (method, refcache.fingerprint(ref), refcache.fingerprint(np.concatenate(blocks)), rest_size, seed,
           bandwidth)
    if key not in _block_memo:
        _block_memo[key] = _plain_block_scores(method, ref, blocks, rest_size, seed, bandwidth)
    return _block_memo[key]


thresholds._block_scores = _memo_block_scores


def cells(n: int, small_n: int) -> list[tuple[str, float | None, int]]:
    # Cyclic quiet last: its day-long reference makes it the slowest cell (the table keeps the order).
    return [("quiet", 0.0, n), ("10% new", 0.1, n), ("20% new", 0.2, n), ("40% new", 0.4, n),
            (f"40% new @{small_n}", 0.4, small_n), ("cyclic quiet", None, n), (NO_REPEATS, -1.0, n)]


NO_REPEATS = "cyclic quiet, no repeats"
NO_REPEATS_POOL = {"hwu64": "hwu64_full", "clinc150": None}
"""The larger pool the no-repeats cell draws from (the dataset's own extract when there is none)."""
SHARE_POOL = {"hwu64": "hwu64_full", "clinc150": "clinc150"}
"""The pool the share cells draw from by default: the largest shipped one, room for the trailing sample."""
ORDER = ("quiet", "cyclic quiet", "cyclic quiet, no repeats", "10% new", "20% new", "40% new")


def cyclic_windows(pool: IntentPool, n: int, rng: np.random.Generator, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A day-long reference of 8 windows' worth of events (arrival order) and one 5-minute slot of n events
    of the same cyclic quiet traffic."""
    ref_times = np.sort(rng.random(8 * n))
    start = rng.random()
    cur_times = (start + rng.random(n) / 288.0) % 1.0
    ref = cyclic_sample(pool, ref_times, amplitude=0.5, rng=rng, seed=seed)
    cur = cyclic_sample(pool, cur_times, amplitude=0.5, rng=rng, seed=seed)
    return pool.vectors[ref], pool.vectors[cur]


def cyclic_windows_distinct(pool: IntentPool, n_reference: int, n: int, rng: np.random.Generator,
                            seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Like `cyclic_windows`, but the reference (`n_reference` events over the day) and the slot share no query
    (`cyclic_disjoint_sample`; the day's mix proportional to the pool's intent sizes): `cyclic_windows`' 8,000-row
    day repeats every query of the 3,503-row extract about twice, so each query of the window has an exact copy in
    the reference (fine for mixture statistics, flattering for kNN isolation and vacuous for `novelty`). With
    `hwu64_full` (11,033 queries) the reference is 8 windows' worth, so calibration blocks are window-sized. Also
    returns how many reference rows repeat an earlier reference row (an intent run out; never a window query)."""
    ref_times = np.sort(rng.random(n_reference))
    cur_times = (rng.random() + rng.random(n) / 288.0) % 1.0
    draw = cyclic_disjoint_sample(pool, ref_times, cur_times, amplitude=0.5, rng=rng, seed=seed)
    return pool.vectors[draw.reference], pool.vectors[draw.window], draw.reference_repeats


def windows_with_trailing(pool: IntentPool, *, n: int, share: float, rng: np.random.Generator,
                          n_trailing: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`new_intent_windows`' reference and window (the same random draws, so the same windows), plus up to
    `n_trailing` further rows of the usual intents that neither holds: the quiet hours before a sudden shift, what
    the pipeline's onset row compares the window with (monitor/drift/onset.py)."""
    new = rng.choice(pool.eligible_new_intents(), 10, replace=False)
    is_new = np.isin(pool.intents, new)
    base, other = rng.permutation(np.flatnonzero(~is_new)), np.flatnonzero(is_new)
    k = round(share * n)
    if 2 * n - k > base.size or k > other.size:
        raise ValueError("the pool is too small for these window sizes")
    ref = pool.vectors[base[:n]]
    cur = np.concatenate([pool.vectors[base[n: 2 * n - k]], pool.vectors[rng.choice(other, k, replace=False)]])
    trailing = pool.vectors[base[2 * n - k: 2 * n - k + n_trailing]]
    return ref, cur[rng.permutation(n)], trailing


def onset_score(trailing: np.ndarray, cur: np.ndarray, seed: int) -> float:
    """The onset row's normal score on one field (knn, the window against the trailing sample)."""
    res = get_detector("knn")(trailing, cur, seed=seed, min_effect=0.0, alpha=0.01)
    return float(thresholds.result_score(res))


def run_trial(ref: np.ndarray, cur: np.ndarray, seed: int, timings: dict[str, list[float]],
              trailing: np.ndarray | None = None, defaults_only: bool = False) -> dict[str, object]:
    out: dict[str, object] = {}
    _block_memo.clear()
    p_onset = 1.0
    if trailing is not None:
        start = time.perf_counter()
        score = onset_score(trailing, cur, seed)
        timings["onset (knn vs trailing)"].append(time.perf_counter() - start)
        # λ 1: what the onset history's genomic control gives on stationary traffic (the quiet cell's own λ, from
        # these scores, is printed with the table).
        p_onset = deflated_p(score, 1.0)
        out["onset score"] = score
        out[ONSET_ROW] = p_onset <= 0.01
    if defaults_only:
        set_cals = calibrate_methods(ref, DEFAULT_METHODS, seed=seed, window_size=cur.shape[0], alpha=0.01)
        p_set = []
        for m in DEFAULT_METHODS:
            res = get_detector(m)(ref, cur, seed=seed, min_effect=0.0, alpha=0.01)
            judged = apply_calibration(res, set_cals[m], 0.01)
            out[f"{m}|calibrated, alpha 0.01"] = judged.is_drift
            out[f"lambda {m}"], out[f"effect {m}"] = set_cals[m].lam, float(res.effect_size or 0.0)
            p_set.append(float(judged.details["p_calibrated"]))
        out[REFERENCE_ROWS] = bool(bh_decisions(p_set, 0.01).any())
        if trailing is not None:
            out[DEFAULTS] = bool(bh_decisions([*p_set, p_onset], 0.01).any())
        return out
    start = time.perf_counter()
    cals = calibrate_methods(ref, ("mmd", "knn", "classifier"), seed=seed, window_size=cur.shape[0], alpha=0.01)
    timings["calibration (mmd, knn, classifier)"].append(time.perf_counter() - start)
    start = time.perf_counter()
    cals.update(calibrate_methods(ref, ("novelty",), seed=seed, window_size=cur.shape[0], alpha=0.01))
    timings["calibration (novelty alone)"].append(time.perf_counter() - start)
    start = time.perf_counter()
    cals.update(calibrate_methods(ref, ("knn_strat",), seed=seed, window_size=cur.shape[0], alpha=0.01))
    timings["calibration (knn_strat alone)"].append(time.perf_counter() - start)
    results = {}
    for method, cal in cals.items():
        start = time.perf_counter()
        res = get_detector(method)(ref, cur, seed=seed, min_effect=0.0, alpha=0.01)
        timings[method].append(time.perf_counter() - start)
        results[method] = res
        p, eff = float(res.p_value or 1.0), float(res.effect_size or 0.0)
        if method == "mmd":
            out["mmd|old defaults (p<=0.01, effect>=0.05)"] = p <= 0.01 and eff >= 0.05
            out["mmd|alpha 0.05, no floor"] = p <= 0.05
        if method == "novelty":
            out["novelty|exact p <= 0.01, uncalibrated"] = p <= 0.01
        if method == "knn_strat":
            out["knn_strat|permutation p <= 0.01, uncalibrated"] = p <= 0.01
        judged = apply_calibration(res, cal, 0.01)
        out[f"{method}|calibrated, alpha 0.01"] = judged.is_drift
        out[f"lambda {method}"] = cal.lam
        out[f"effect {method}"] = eff
    for name, methods in {**SETS, "defaults": DEFAULT_METHODS}.items():
        # Calibrated as a set: the pipeline calibrates a project's methods together (one shared gate).
        set_cals = calibrate_methods(ref, methods, seed=seed, window_size=cur.shape[0], alpha=0.01)
        p_set = [float(apply_calibration(results[m], set_cals[m], 0.01).details["p_calibrated"]) for m in methods]
        label = REFERENCE_ROWS if name == "defaults" else f"{name}|set, calibrated, BH at 0.01"
        out[label] = bool(bh_decisions(p_set, 0.01).any())
        if name == "defaults":
            out.update({f"lambda {m} (defaults)": set_cals[m].lam for m in methods})
            if trailing is not None:
                out[DEFAULTS] = bool(bh_decisions([*p_set, p_onset], 0.01).any())
    start = time.perf_counter()
    out["evidently_model|Evidently defaults"] = get_detector("evidently_model")(ref, cur, seed=seed).is_drift
    timings["evidently_model"].append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="hwu64", choices=("hwu64", "clinc150"))
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--n", type=int, default=1000, help="events per side")
    parser.add_argument("--small-n", type=int, default=300, help="per side for the small-window 40%% cell")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--reference-windows", type=int, default=8,
                        help=f"reference of the '{NO_REPEATS}' cell, in windows (8 with drift_calibration_blocks = 8 "
                        "makes the calibration blocks window-sized)")
    parser.add_argument("--onset", type=int, default=None, metavar="ROWS",
                        help=f"trailing rows for the onset row in the share cells (default {TRAILING_FACTOR}x the "
                        "window, the pipeline's trailing sample; at most what the pool has left; 0 = no onset row, "
                        "'defaults' then prints '-')")
    parser.add_argument("--pool", default=None, metavar="NAME",
                        help="draw the share cells from this intent pool (default: hwu64_full for hwu64, 11,033 "
                        "queries; the dataset's extract otherwise)")
    parser.add_argument("--defaults-only", action="store_true",
                        help="compute only the default methods (and --onset): the other rows print as '-'")
    parser.add_argument("--cells", nargs="*", default=None,
                        help="run only these cells (e.g. 'cyclic quiet'); the stream of windows then differs")
    args = parser.parse_args()

    pool = load_intent_pool(args.pool or SHARE_POOL[args.dataset])
    # The no-repeats cell needs a pool large enough for a day of 8 windows plus one window without a shared query.
    big_name = NO_REPEATS_POOL[args.dataset]
    big = load_intent_pool(big_name) if big_name and (not args.cells or NO_REPEATS in args.cells) else None
    ref_windows = args.reference_windows
    rng = np.random.default_rng(args.seed)
    timings: dict[str, list[float]] = defaultdict(list)
    reference_repeats: list[int] = []
    trailing_rows: list[int] = []
    onset_lambdas: dict[str, float] = {}
    table: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    for label, share, n in cells(args.n, args.small_n):
        if args.cells and label not in args.cells:
            continue
        outcomes = []
        for t in range(args.trials):
            trailing = None
            if share is None:
                ref, cur = cyclic_windows(pool, n, rng, seed=t)
            elif share < 0 and big is not None:
                ref, cur, repeats = cyclic_windows_distinct(big, ref_windows * n, n, rng, seed=t)
                reference_repeats.append(repeats)
            elif share < 0:  # no big pool for this dataset: the old 1.5-window day (λ extrapolated, see docs)
                ref, cur, repeats = cyclic_windows_distinct(pool, 3 * n // 2, n, rng, seed=t)
                reference_repeats.append(repeats)
            elif args.onset != 0:
                want = TRAILING_FACTOR * n if args.onset is None else args.onset
                ref, cur, trailing = windows_with_trailing(pool, n=n, share=share, rng=rng, n_trailing=want)
                trailing_rows.append(trailing.shape[0])
            else:
                ref, cur = new_intent_windows(pool, n_reference=n, n_current=n, share=share, rng=rng)
            outcomes.append(run_trial(ref, cur, seed=t, timings=timings,
                                      trailing=trailing,
                                      defaults_only=args.defaults_only))
            print(f"  {label}: trial {t + 1}/{args.trials} ({time.perf_counter() - started:.0f} s) flagged: "
                  + ", ".join(k for k, v in outcomes[-1].items() if "|" in k and v), file=sys.stderr, flush=True)
        keys = dict.fromkeys(k for o in outcomes for k in o)
        scores = np.array([o["onset score"] for o in outcomes if "onset score" in o], dtype=float)
        if scores.size:
            onset_lambdas[label] = inflation(scores)
        table[label] = {key: float(np.mean([o[key] for o in outcomes if key in o])) for key in keys}
        print(f"  {label}: " + ", ".join(f"{k.split('|')[0]} {v:.2f}" for k, v in table[label].items() if "|" in k),
              file=sys.stderr, flush=True)
        suffix = "_cells" if args.cells else ""
        partial = ROOT / "bench" / "results" / f"drift_power_{args.dataset}{suffix}_partial.json"
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps({"args": vars(args), "table": table}, indent=1))

    labels = sorted(table, key=lambda c: ORDER.index(c) if c in ORDER else len(ORDER))
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\n## Share of trials flagged — {args.dataset}, {args.n} per side, {args.trials} trials per cell, "
          f"seed {args.seed} ({when}, {platform.machine()}, {platform.python_version()})\n")
    print("| detector | rule | " + " | ".join(labels) + " |")
    print("|---|---|" + "---:|" * len(labels))
    for method, rule in ROWS:
        key = f"{method}|{rule}"
        if not any(key in table[c] for c in labels):
            continue
        print(f"| `{method}` | {rule} | " + " | ".join(f"{table[c][key]:.2f}" if key in table[c] else "-"
                                                     for c in labels) + " |")
    print("\nMean λ / mean effect size per cell:\n")
    print("| method | " + " | ".join(labels) + " |")
    print("|---|" + "---:|" * len(labels))
    for method in CALIBRATED:
        if not any(f"lambda {method}" in table[c] for c in labels):
            continue
        print(f"| `{method}` | " + " | ".join(
            f"{table[c][f'lambda {method}']:.2f} / {table[c][f'effect {method}']:.3f}" if f"lambda {method}" in table[c]
            else "-" for c in labels) + " |")
    if trailing_rows:
        asked = f"{TRAILING_FACTOR}x the window" if args.onset is None else f"{args.onset}"
        print(f"\nOnset row: trailing rows per trial {min(trailing_rows)}-{max(trailing_rows)} (asked {asked}); "
              "genomic-control λ of its scores (median score² / 0.455) per cell: " + ", ".join(
                  f"{c} {lam:.2f}" for c, lam in onset_lambdas.items()) + " (the quiet cell's is what the history "
              "gives; the others include the shift).")
    if reference_repeats:
        src = (f"{big_name} ({big.vectors.shape[0]:,} queries), a reference of {ref_windows} windows "
               f"({ref_windows * args.n:,} rows)") if big is not None else \
            f"{args.dataset}, a reference of {3 * args.n // 2:,} rows"
        print(f"\n{NO_REPEATS}: {src}; no query in both reference and window; reference rows repeating an earlier "
              f"reference row (an intent run out): mean {np.mean(reference_repeats):.1f}, max {max(reference_repeats)} "
              f"per trial, in {sum(r > 0 for r in reference_repeats)} of {len(reference_repeats)} trials.")
    print("\nMean seconds per call: " + ", ".join(f"{k} {np.mean(v):.2f}" for k, v in sorted(timings.items())))
    print(f"Total {time.perf_counter() - started:.0f} s")
    out = ROOT / "bench" / "results" / f"drift_power_{args.dataset}{'_cells' if args.cells else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "when": when, "table": table,
                               "timings": {k: float(np.mean(v)) for k, v in timings.items()}}, indent=1))


if __name__ == "__main__":
    main()
