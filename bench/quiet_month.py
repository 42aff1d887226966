"""A month of non-stationary quiet traffic through the default drift decision: how many false pages?

    python bench/quiet_month.py                          # 30 days, shift from day 20 (hours of CPU)
    python bench/quiet_month.py --days 0.25 --shift-day 0.2   # a slice; re-run the same command to resume

Traffic (public HWU64 queries, held out from every calibration choice; bench/data/README.md): 5-minute
windows of ~1,000 events (Poisson), 8 segments (`region` r0..r7, each with its own fixed intent tilt)
plus `all`. Intent shares follow a daily cycle (every intent its own phase, ±50%) times log-normal noise
(sd 0.2) whose level changes from hour to hour of the calendar (interpolated), so no two hours and no two
days have the same mix. Both fields: the prompt is the query; the
response field is another query of the same intent (the dataset has no responses; it moves with the intent
mix as a bot's answers would). Ten intents (each from a domain that keeps others) never occur until
`--shift-day`; from then on 15% of every window comes from them.

Decision, exactly as the pipeline at defaults: reference = a pinned day (day 0 of the same simulator,
subsampled in arrival order to `--reference-size` per segment, like `drift_max_samples`), `mmd` and `knn`
calibrated on it per segment and field (monitor/drift/thresholds.py), Benjamini-Hochberg at 0.01 over the
window's 36 rows (9 segments x 2 fields x 2 methods). Pages follow the alert-rule semantics: one rule per
drift metric (field x method) over every segment with `field = flagged`, `for_windows` (default 2)
consecutive flagged windows fire it, an unflagged window resolves it, and a page is a transition to firing.

Reported: false pages before the shift (and per 30 days), flagged windows before it, windows from the shift
to the first page. Progress is checkpointed in bench/results/quiet_month_<args>.jsonl (one line per window,
with every row's normal score) after every window.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.drift import get_detector  # noqa: E402
from monitor.drift.budget import bh_decisions, monthly_false_pages  # noqa: E402
from monitor.drift.calibration import IntentPool, load_intent_pool  # noqa: E402
from monitor.drift.null import deflated_p  # noqa: E402
from monitor.drift.thresholds import (  # noqa: E402
    Calibration,
    apply_calibration,
    calibrate_methods,
    effective_size,
    segment_lambda,
)

METHODS = ("mmd", "knn")
FIELDS = ("prompt", "response")
WINDOWS_PER_DAY = 288


class Simulator:
    """Seeded quiet traffic with a daily cycle, per-window noise, segment tilts, and an optional shift."""

    def __init__(self, pool: IntentPool, *, segments: int, seed: int, n_new: int = 10) -> None:
        self.pool = pool
        rng = np.random.default_rng(seed)
        self.new = set(rng.choice(pool.eligible_new_intents(), n_new, replace=False).tolist())
        names = sorted(set(pool.intents.tolist()))
        self.usual = [n for n in names if n not in self.new]
        self.phases = rng.uniform(0, 2 * np.pi, len(self.usual))
        self.tilts = np.exp(0.3 * rng.standard_normal((segments, len(self.usual))))
        self.rows = {n: np.flatnonzero(pool.intents == n) for n in names}
        self.segments = segments
        self.seed = seed

    def noise(self, times: np.ndarray) -> np.ndarray:
        """Multiplicative log-normal noise on every intent's share (sd 0.2), a random level per hour of the
        simulated calendar, linearly interpolated: no two hours, and no two days, have the same mix."""
        hours = times * 24.0
        lo = np.floor(hours).astype(np.int64)
        knots = {h: np.random.default_rng([self.seed, 99, int(h) + 10**6]).standard_normal(len(self.usual))
                 for h in np.unique(np.concatenate([lo, lo + 1]))}
        a, b = np.stack([knots[h] for h in lo]), np.stack([knots[h + 1] for h in lo])
        frac = (hours - lo)[:, None]
        return np.asarray(np.exp(0.2 * ((1 - frac) * a + frac * b)))

    def events(self, t0: float, t1: float, n: int, shift: float, key: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(prompt rows, response rows, segment) of n events between days t0 and t1, sorted by time."""
        rng = np.random.default_rng([self.seed, key])
        times = np.sort(rng.uniform(t0, t1, n))
        seg = rng.integers(0, self.segments, n)
        cycle = 1.0 + 0.5 * np.cos(2 * np.pi * times[:, None] - self.phases[None, :])
        w = cycle * self.noise(times) * self.tilts[seg]
        cum = np.cumsum(w / w.sum(axis=1, keepdims=True), axis=1)
        picks = np.minimum((rng.random(n)[:, None] > cum).sum(axis=1), len(self.usual) - 1)
        intents = [self.usual[i] for i in picks]
        if shift > 0:
            new = sorted(self.new)
            for i in np.flatnonzero(rng.random(n) < shift):
                intents[i] = new[rng.integers(0, len(new))]
        prompt = np.array([rng.choice(self.rows[x]) for x in intents])
        response = np.array([rng.choice(self.rows[x]) for x in intents])
        return prompt, response, seg


def segment_labels(segments: int) -> list[str]:
    return ["all", *[f"region=r{i}" for i in range(segments)]]


def masks(seg: np.ndarray, segments: int) -> dict[str, np.ndarray]:
    out = {"all": np.ones(seg.size, dtype=bool)}
    out.update({f"region=r{i}": seg == i for i in range(segments)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--shift-day", type=float, default=20.0, help="day the 15%% new-intent shift starts")
    parser.add_argument("--start-day", type=float, default=0.0,
                        help="first simulated day to run (windows are a function of their index: a long run can be "
                        "split into processes over disjoint day ranges)")
    parser.add_argument("--shift", type=float, default=0.15)
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--events", type=int, default=1000, help="mean events per 5-minute window")
    parser.add_argument("--reference-size", type=int, default=2000, help="reference rows per segment")
    parser.add_argument("--for-windows", type=int, default=2)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--calibration-blocks", type=int, default=8, help="drift_calibration_blocks (default 8)")
    parser.add_argument("--seed", type=int, default=30)
    parser.add_argument("--report-only", action="store_true", help="report the checkpoint of these arguments as it is")
    args = parser.parse_args()

    pool = load_intent_pool("hwu64")
    sim = Simulator(pool, segments=args.segments, seed=args.seed)
    labels = segment_labels(args.segments)
    tag = "_".join(f"{k}{v}" for k, v in sorted(vars(args).items())
                   if k != "report_only" and not (k == "start_day" and v == 0.0))
    ckpt = ROOT / "bench" / "results" / f"quiet_month_{tag}.jsonl"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    state = load_checkpoint(ckpt, args)
    if args.report_only:
        report(state, args)
        return

    # The reference: a pinned day (day -1 .. 0 of the simulator), subsampled per segment in arrival order.
    started = time.perf_counter()
    day = [sim.events(-1.0 + w / WINDOWS_PER_DAY, -1.0 + (w + 1) / WINDOWS_PER_DAY, args.events, 0.0, key=10**6 + w)
           for w in range(WINDOWS_PER_DAY)]  # window by window: every window its own noise, as in the stream
    rp, rr, rs = (np.concatenate([d[i] for d in day]) for i in range(3))
    ref: dict[tuple[str, str], np.ndarray] = {}
    cals: dict[tuple[str, str], dict[str, Calibration]] = {}
    rng = np.random.default_rng(args.seed)
    n_window = {label: int(args.events * (1 if label == "all" else 1 / args.segments)) for label in labels}
    for label, m in masks(rs, args.segments).items():
        idx = np.flatnonzero(m)
        size = min(idx.size, 2 * args.reference_size if label == "all" else args.reference_size)
        keep = np.sort(rng.choice(idx, size, replace=False))
        for field, rows in (("prompt", rp), ("response", rr)):
            ref[(label, field)] = pool.vectors[rows[keep]]
            cals[(label, field)] = calibrate_methods(ref[(label, field)], METHODS, seed=args.seed,
                                                     window_size=n_window[label], alpha=args.alpha,
                                                     n_blocks=args.calibration_blocks)
    lam = {f"{k[0]}|{k[1]}|{m}": c.lam for k, v in cals.items() for m, c in v.items()}
    if "lambda" not in state:
        with ckpt.open("a") as out:
            out.write(json.dumps({"lambda": lam}) + "\n")
    state["lambda"] = lam
    print("λ of `all`: " + ", ".join(f"{k.split('|', 1)[1]} {v:.1f}" for k, v in lam.items() if k.startswith("all|")),
          file=sys.stderr, flush=True)
    print(f"reference calibrated in {time.perf_counter() - started:.0f} s; λ > 1 for "
          f"{sum(v > 1 for v in lam.values())} of {len(lam)} (segment, field, method); max λ {max(lam.values()):.2f}",
          file=sys.stderr, flush=True)

    total = round(args.days * WINDOWS_PER_DAY)
    first = round(args.start_day * WINDOWS_PER_DAY)
    done = first + len(state["windows"])
    for w in range(done, total):
        t0 = w / WINDOWS_PER_DAY
        shift = args.shift if t0 >= args.shift_day else 0.0
        n = int(np.random.default_rng([args.seed, w, 7]).poisson(args.events))
        cp, cr, cs = sim.events(t0, t0 + 1 / WINDOWS_PER_DAY, n, shift, key=w)
        keys, p_cal, scores = [], [], []
        for label, m in masks(cs, args.segments).items():
            for field, rows in (("prompt", cp), ("response", cr)):
                cur = pool.vectors[rows[m]]
                if cur.shape[0] < 100:  # drift_min_samples: insufficient, not judged
                    continue
                for method in METHODS:
                    res = get_detector(method)(ref[(label, field)], cur, alpha=args.alpha, seed=w, min_effect=0.0)
                    judged = apply_calibration(res, cals[(label, field)][method], args.alpha)
                    keys.append(f"{label}|{field}|{method}")
                    p_cal.append(float(judged.details["p_calibrated"]))
                    scores.append(round(float(judged.details["score"]), 4))
        flags = bh_decisions(p_cal, args.alpha) if p_cal else np.zeros(0, dtype=bool)
        # The raw normal scores are kept with the flags, so other decision rules (budget level, persistence)
        # can be judged on the very same detector runs without running them again.
        state["windows"].append({"w": w, "shift": shift, "n": n, "flagged": [k for k, f in zip(keys, flags, strict=True)
                                                                              if f],
                                 "scores": dict(zip(keys, scores, strict=True))})
        with ckpt.open("a") as out:  # append-only: a month is ~8,640 lines, never rewritten
            out.write(json.dumps(state["windows"][-1]) + "\n")
        elapsed = time.perf_counter() - started
        print(f"\rwindow {w + 1}/{total} day {t0:.2f} flagged {len(state['windows'][-1]['flagged'])} "
              f"({elapsed:.0f} s, {elapsed / (w + 1 - done):.1f} s/window)", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    report(state, args)


def load_checkpoint(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """{"args", "windows", and "lambda" once calibrated} from the append-only checkpoint (created if missing).
    A partly written last line (a killed run) is dropped: that window is computed again."""
    if not path.exists():
        path.write_text(json.dumps({"args": vars(args)}) + "\n")
    state: dict[str, Any] = {"args": vars(args), "windows": []}
    lines = path.read_text().splitlines()
    good = []
    for line in lines:
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            break
        good.append(line)
        if "w" in item:
            state["windows"].append(item)
        elif "lambda" in item:
            state["lambda"] = item["lambda"]
    if len(good) < len(lines):
        path.write_text("".join(f"{line}\n" for line in good))
    return state


def pages(state: dict[str, Any], args: argparse.Namespace, need: int, of: int) -> tuple[int, int | None]:
    """(false pages before the shift, windows from the shift to the first page) when a rule fires once `need` of
    its last `of` windows are flagged (need = of = for_windows: the alert rule's consecutive windows). One rule
    per drift metric (field x method) and segment; a page is a transition to firing."""
    rules = [f"{f}|{m}" for f in FIELDS for m in METHODS]
    recent: dict[tuple[str, str], list[bool]] = {}
    firing: dict[tuple[str, str], bool] = {}
    quiet_pages = 0
    first_page_after_shift: int | None = None
    shift_start: int | None = None
    for row in state["windows"]:
        flagged = set(row["flagged"])
        if row["shift"] > 0 and shift_start is None:
            shift_start = row["w"]
        for label in segment_labels(args.segments):
            for rule in rules:
                key = (label, rule)
                last = [*recent.get(key, []), f"{label}|{rule}" in flagged][-of:]
                recent[key] = last
                now = sum(last) >= need
                if now and not firing.get(key, False):
                    if row["shift"] == 0:
                        quiet_pages += 1
                    elif first_page_after_shift is None and shift_start is not None:
                        first_page_after_shift = row["w"] - shift_start + 1
                firing[key] = now
    return quiet_pages, first_page_after_shift


def judge_segment_lambda(state: dict[str, Any], args: argparse.Namespace) -> None:
    """The stored scores judged again with every segment's λ at least the `all` λ carried to the segment's size
    (monitor/drift/thresholds.py `segment_lambda`), BH at alpha over the window's rows as before."""
    lam = state.get("lambda")
    windows = [row for row in state["windows"] if "scores" in row]
    if not lam or not windows:
        return
    flagged = []
    for row in windows:
        keys = list(row["scores"])
        p_values = []
        for key in keys:
            label, field, method = key.split("|")
            own = float(lam[key])
            if label != "all":
                h_seg = effective_size(max(1, round(row["n"] / args.segments)), args.reference_size)
                h_all = effective_size(row["n"], 2 * args.reference_size)
                own = segment_lambda(own, float(lam[f"all|{field}|{method}"]), h_seg, h_all)
            p_values.append(deflated_p(float(row["scores"][key]), own))
        flags = bh_decisions(p_values, args.alpha)
        flagged.append({**row, "flagged": [k for k, f in zip(keys, flags, strict=True) if f]})
    quiet = [row for row in flagged if row["shift"] == 0]
    quiet_pages, first = pages({"windows": flagged}, args, args.for_windows, args.for_windows)
    print(f"\nSegments' λ at least the `all` λ carried to their size (same {len(windows)} windows, same scores): "
          f"{sum(bool(r['flagged']) for r in quiet)} of {len(quiet)} quiet windows flagged, "
          f"{sum(len(r['flagged']) for r in quiet)} rows, {quiet_pages} false pages; "
          f"first page after the shift: {first or 'not paged'}; flagged rows per shifted window: "
          f"{[len(r['flagged']) for r in flagged if r['shift'] > 0][:12]}")


def report(state: dict[str, Any], args: argparse.Namespace) -> None:
    """Pages by alert-rule semantics (one rule per drift metric over every segment, for_windows consecutive),
    and the same flags under other persistence rules for comparison."""
    quiet_windows = sum(row["shift"] == 0 for row in state["windows"])
    flagged_quiet = sum(row["shift"] == 0 and bool(row["flagged"]) for row in state["windows"])
    shift_start = any(row["shift"] > 0 for row in state["windows"])
    quiet_pages, first_page_after_shift = pages(state, args, args.for_windows, args.for_windows)
    days = quiet_windows / WINDOWS_PER_DAY
    print(f"\n## quiet_month: {len(state['windows'])} windows ({len(state['windows']) / WINDOWS_PER_DAY:.2f} days), "
          f"{args.segments} segments + all, {args.events} events/window, for_windows {args.for_windows}\n")
    print("| measure | value |\n|---|---:|")
    print(f"| quiet windows | {quiet_windows} |")
    print(f"| quiet windows with any flagged row (BH at {args.alpha}) | {flagged_quiet} |")
    print(f"| false pages | {quiet_pages} |")
    if days > 0:
        print(f"| false pages per 30 days (extrapolated) | {quiet_pages / days * 30:.2f} |")
    rows = len(segment_labels(args.segments)) * len(FIELDS) * len(METHODS)
    flags = sum(len(row["flagged"]) for row in state["windows"] if row["shift"] == 0)
    if quiet_windows:
        rate = flags / (quiet_windows * rows)
        # What a short run's zero can hide: pages a month would bring if every rule flagged independently from
        # window to window at the rate seen here (flags of one rule in consecutive windows are what page).
        print(f"| flagged rows per (segment, field, method) and quiet window | {rate:.4f} ({flags} flags) |")
        print(f"| pages per 30 days if each rule flagged independently at that rate | "
              f"{rows * 30 * WINDOWS_PER_DAY * rate**args.for_windows:.1f} |")
    print(f"| bound if each quiet window flagged w.p. alpha | "
          f"{monthly_false_pages(args.alpha, args.for_windows, 300):.2f} per 30 days |")
    if shift_start:
        paged = first_page_after_shift or "not paged"
        print(f"| windows from the {args.shift:.0%} shift to the first page | {paged} |")
    judge_segment_lambda(state, args)
    print("\nThe same flags under other persistence rules (a rule fires when `need` of its last `of` windows are "
          "flagged):\n\n| rule | false pages | per 30 days | windows from the shift to the first page |\n"
          "|---|---:|---:|---:|")
    for need, of in ((1, 1), (2, 2), (2, 3), (3, 3)):
        false_pages, first = pages(state, args, need, of)
        per_month = f"{false_pages / days * 30:.2f}" if days > 0 else "-"
        print(f"| {need} of {of} | {false_pages} | {per_month} | {(first or 'not paged') if shift_start else '-'} |")


if __name__ == "__main__":
    main()
