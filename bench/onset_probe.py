"""Onset probe (issue #16): each window of bench/quiet_month.py's simulator against the *trailing* hours of traffic.

    python bench/onset_probe.py                          # trailing 12 windows (1 hour), 60 quiet windows
    python bench/onset_probe.py --trailing 36 --quiet 60  # 3 hours
    python bench/onset_probe.py --trailing 36 --methods knn --month 0 5774   # every window's scores, resumable
    python bench/onset_probe.py --trailing 36 --methods knn --month-report      # judge what that checkpoint holds
    python bench/onset_probe.py --trailing 36 --methods knn --onsets 24   # 24 shift starts over a day: paged within 3?

Why: on the quiet month the pinned-day reference is compared with a 5-minute window whose hour has its own intent mix
(the daily cycle, ±50%, and hourly noise), so λ must absorb the whole day's movement and a 15% new-intent shift from
day 20 stays under it. A window differs from the hours just before it by far less of that cycle, while a shift that
starts now is in the window and not in the trailing hours: an *onset* comparison, next to the reference one.

What it measures, no decision rule yet: the normal score (`result_score`: the permutation null's Pearson III tail as
a z) of `knn` and `mmd` at their defaults, for `all` and both fields, window against a uniform sample of up to
`--max-reference` rows of the `--trailing` windows before it. Quiet windows are drawn from days 1-19.8 (seeded),
the shifted ones are the first 14 from `--shift-day`. A score's mean and sd over quiet windows say how far the
trailing comparison is from its own null (mean 0, sd 1 when nothing moves); the shifted rows how long the onset stays
visible while the trailing hours fill with the new intents.

How a threshold could be calibrated without live history: the same comparison on the *pinned reference day*
(`--reference-blocks` evenly spaced windows of it, each against its own trailing windows of that day) gives a
genomic-control λ per row,
median(score²) / median(χ²₁), as the reference calibration does (monitor/drift/thresholds.py); the table prints it
beside the λ the quiet live windows themselves show, and the share of windows whose score clears √λ · 2.33 with the
reference day's λ. Results also go to bench/results/onset_probe_<T>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.quiet_month import WINDOWS_PER_DAY, Simulator  # noqa: E402
from monitor.drift import get_detector  # noqa: E402
from monitor.drift.budget import bh_decisions  # noqa: E402
from monitor.drift.calibration import load_intent_pool  # noqa: E402
from monitor.drift.null import deflated_p  # noqa: E402
from monitor.drift.onset import HISTORY_ROWS, MIN_HISTORY, combined_score  # noqa: E402
from monitor.drift.thresholds import result_score  # noqa: E402

CHI2_MEDIAN = 0.4549364  # median of χ² with one degree of freedom

FIELDS = ("prompt", "response")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trailing", type=int, default=12, help="trailing windows (5 minutes each) compared with")
    ap.add_argument("--quiet", type=int, default=60, help="quiet windows sampled from days 1-19.8")
    ap.add_argument("--shifted", type=int, default=14, help="windows from the shift's start")
    ap.add_argument("--max-reference", type=int, default=4000, help="trailing rows kept (uniform sample)")
    ap.add_argument("--shift-day", type=float, default=20.0)
    ap.add_argument("--shift", type=float, default=0.15)
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=30, help="the simulator's seed (quiet_month's default)")
    ap.add_argument("--reference-blocks", type=int, default=16,
                    help="pinned-day windows compared with their trailing windows for λ (at most 288 - trailing)")
    ap.add_argument("--methods", default="knn,mmd", help="comma-separated detectors")
    ap.add_argument("--month", nargs=2, type=int, metavar=("FIRST", "END"),
                    help="score every window in [FIRST, END) and the pinned day's windows instead, one JSON line each "
                    "in bench/results/onset_month_<trailing>_<methods>.jsonl (resumed where it stopped), for judging "
                    "an onset row beside quiet_month's checkpoint of the same windows")
    ap.add_argument("--month-report", action="store_true",
                    help="judge the --month checkpoint's onset rows alone: λ from the pinned day's windows or from the "
                    "last day of windows' own scores, BH at --alpha over the rows, pages at --for-windows")
    ap.add_argument("--onsets", type=int, metavar="N",
                    help="N shift starts spread over the day from --shift-day (every 24/N hours): the first 3 windows "
                    "of each scored against their trailing windows, judged as the pipeline's onset rows (λ from the "
                    "--month checkpoint's last day before --shift-day) in a BH family with --family reference rows "
                    "at p = 1 (their least helpful: a smaller p can only add discoveries); prints how many were paged "
                    "within 3 windows")
    ap.add_argument("--family", type=int, default=36,
                    help="reference rows in the BH family for --onsets (quiet_month: 36)")
    ap.add_argument("--alpha", type=float, default=0.01)
    ap.add_argument("--for-windows", type=int, default=2)
    args = ap.parse_args()
    if args.month_report:
        month_report(args)
        return

    methods = tuple(args.methods.split(","))
    pool = load_intent_pool("hwu64_full")
    sim = Simulator(pool, segments=8, seed=args.seed)

    def window(w: int, shift_day: float = args.shift_day) -> tuple[np.ndarray, np.ndarray]:
        """Exactly quiet_month's window w (`Run.calls`); w < 0: window 288 + w of its pinned reference day."""
        if w < 0:
            start = -1.0 + (WINDOWS_PER_DAY + w) / WINDOWS_PER_DAY
            prompt, response, _ = sim.events(start, start + 1 / WINDOWS_PER_DAY, args.events, 0.0,
                                             key=10**6 + WINDOWS_PER_DAY + w, side="reference")
            return prompt, response
        t0 = w / WINDOWS_PER_DAY
        shift = args.shift if t0 >= shift_day - 1e-9 else 0.0
        n = int(np.random.default_rng([args.seed, w, 7]).poisson(args.events))
        prompt, response, _ = sim.events(t0, t0 + 1 / WINDOWS_PER_DAY, n, shift, key=w)
        return prompt, response

    def scores(w: int, shift_day: float = args.shift_day) -> dict[str, float]:
        key = w if w >= 0 else 10**7 - w  # seeds are non-negative; reference-day windows get their own
        current = window(w, shift_day)
        trailing = [window(v, shift_day) for v in range(w - args.trailing, w)]
        out = {}
        for i, field in enumerate(FIELDS):
            rows = np.concatenate([t[i] for t in trailing])
            if rows.size > args.max_reference:
                keep = np.random.default_rng([args.seed, key, i]).choice(rows.size, args.max_reference, replace=False)
                rows = rows[np.sort(keep)]
            for method in methods:
                res = get_detector(method)(pool.vectors[rows], pool.vectors[current[i]], alpha=0.01, seed=key,
                                           min_effect=0.0)
                out[f"{field}|{method}"] = round(float(result_score(res)), 3)
        return out

    if args.month:
        month(args, scores)
        return
    if args.onsets:
        onsets(args, scores)
        return
    first_shifted = round(args.shift_day * WINDOWS_PER_DAY)
    quiet = np.random.default_rng(5).choice(np.arange(WINDOWS_PER_DAY, first_shifted - 60), args.quiet, replace=False)
    started = time.process_time()
    day = np.unique(np.linspace(args.trailing, WINDOWS_PER_DAY - 1, args.reference_blocks).round().astype(int))
    day -= WINDOWS_PER_DAY
    blocks = {int(w): scores(int(w)) for w in day}
    shifted = {w: scores(w) for w in range(first_shifted, first_shifted + args.shifted)}
    calm = {int(w): scores(int(w)) for w in quiet}
    took = time.process_time() - started

    print(f"\n## Onset: window vs the trailing {args.trailing} windows ({args.trailing * 5} minutes), `all`, "
          f"{args.quiet} quiet windows, the first {args.shifted} from day {args.shift_day:g} ({args.shift:.0%} new "
          f"intents); {took:.0f} CPU-s\n")
    print("| row | quiet mean | quiet sd | quiet max | λ quiet | λ reference day | quiet flagged at λ ref | "
          "shifted windows 1, 2, 3, ... | shifted flagged at λ ref |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|")
    for key in shifted[first_shifted]:
        everything = np.array([s[key] for s in calm.values()])
        q = everything[np.isfinite(everything)]  # a window with no isolated item at all scores -inf under `knn`
        s = np.array([shifted[w][key] for w in sorted(shifted)])
        lam_quiet = max(1.0, float(np.median(everything**2)) / CHI2_MEDIAN)
        lam_ref = max(1.0, float(np.median(np.array([b[key] for b in blocks.values()]) ** 2)) / CHI2_MEDIAN)
        bar = 2.33 * np.sqrt(lam_ref)
        dropped = f" ({everything.size - q.size} at -inf left out)" if q.size < everything.size else ""
        print(f"| {key}{dropped} | {q.mean():.2f} | {q.std():.2f} | {q.max():.2f} | {lam_quiet:.2f} | {lam_ref:.2f} | "
              f"{int((q >= bar).sum())} of {q.size} | " + ", ".join(f"{v:.1f}" for v in s)
              + f" | {int((s >= bar).sum())} of {s.size} |")
    out = ROOT / "bench" / "results" / f"onset_probe_{args.trailing}_{args.reference_blocks}_{args.quiet}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "quiet": calm, "shifted": shifted, "reference_day": blocks},
                              indent=1))


def month_path(args: argparse.Namespace) -> Path:
    return ROOT / "bench" / "results" / f"onset_month_{args.trailing}_{args.methods.replace(',', '+')}.jsonl"


COMBINED = "embeddings|onset"


def lam(values: list[float]) -> float:
    """Genomic-control λ of normal scores, at least 1."""
    return max(1.0, float(np.median(np.square(values))) / CHI2_MEDIAN)


def with_combined(row: dict[str, float]) -> dict[str, float]:
    """The window's scores plus the pipeline's one onset row over both fields (`combine_fields`: Stouffer's sum of
    the fields' scores, each at least -4, / sqrt(#fields))."""
    return {**row, COMBINED: combined_score([v for k, v in row.items() if k.endswith("|knn")])}


def month_report(args: argparse.Namespace) -> None:
    """The onset rows alone, judged two ways from stored scores: λ from the pinned day's windows (fixed), or λ from the
    scores of the live windows of the last day before each window (genomic control on the project's own history;
    at least `--trailing` windows of it). BH at `--alpha` over the window's onset rows; a page is
    `--for-windows` consecutive flagged windows (one rule over the rows); then the same joined to the default rows of
    bench/quiet_month.py's checkpoint of those windows (one BH family of 36 + 2 rows, as the pipeline would judge
    them), for the windows both checkpoints hold."""
    lines = [json.loads(line) for line in month_path(args).read_text().splitlines()]
    scores = {int(row["w"]): with_combined(row["scores"]) for row in lines}
    keys = sorted(k for k in next(iter(scores.values())) if k != COMBINED)
    day = [scores[w] for w in sorted(scores) if w < 0]
    # A window whose trailing span reaches into the pinned day is left out: the simulator draws that day's queries
    # from the other half of each intent's pool, so such a window is compared across the split (windows 0-16 all
    # flagged), which live traffic never is.
    live = sorted(w for w in scores if w >= args.trailing)
    first_shifted = round(args.shift_day * WINDOWS_PER_DAY)

    lam_day = {k: lam([d[k] for d in day]) for k in [*keys, COMBINED]}
    print(f"\n## Onset rows alone, trailing {args.trailing} windows; {len(day)} pinned-day windows, {len(live)} live "
          f"windows ({live[0] if live else '-'}..{live[-1] if live else '-'}); BH at {args.alpha} over "
          f"{len(keys)} rows, pages at {args.for_windows} consecutive flagged windows\n")
    print("λ from the pinned day: " + ", ".join(f"{k} {v:.2f}" for k, v in lam_day.items()))
    borrowed = reference_knn_lambda()
    if borrowed:
        borrowed[COMBINED.split("|")[0]] = max(borrowed.values())
    print("λ borrowed while the history is short (the reference rows' `all` knn λ): "
          + ", ".join(f"{k} {v:.2f}" for k, v in borrowed.items()))
    print("\n| rows | λ source | quiet windows | flagged | false pages | per 30 days | shifted windows | first page "
          "after the shift |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    defaults = default_rows(live)
    for rows, source, joined in (("per field", "pinned day", False), ("per field", "history", False),
                                 ("combined (the pipeline's)", "history", False), ("per field", "pinned day", True),
                                 ("per field", "history", True), ("combined (the pipeline's)", "history", True)):
        row_keys = [COMBINED] if rows.startswith("combined") else keys
        flags: dict[int, bool] = {}
        for w in live:
            if joined and w not in defaults:
                continue
            if source == "pinned day":
                lams = lam_day
            else:
                # The pipeline's rule (monitor/drift/onset.py): genomic control over the finite scores of the last
                # HISTORY_ROWS windows, once MIN_HISTORY exist; until then the reference rows' knn λ.
                history = [scores[v] for v in range(w - HISTORY_ROWS, w) if v in scores and v >= args.trailing]
                lams = {}
                for k in row_keys:
                    finite = [h[k] for h in history if np.isfinite(h[k])]
                    if len(finite) >= MIN_HISTORY:
                        lams[k] = lam(finite)
                    elif k.split("|")[0] in borrowed:
                        lams[k] = borrowed[k.split("|")[0]]
                if len(lams) < len(row_keys):
                    continue  # no reference calibration to borrow from
            p = [deflated_p(scores[w][k], lams[k]) if np.isfinite(scores[w][k]) else 1.0 for k in row_keys]
            flags[w] = bool(bh_decisions(p + (defaults[w] if joined else []), args.alpha).any())
        quiet = [w for w in flags if w < first_shifted]
        shifted = [w for w in flags if w >= first_shifted]
        pages, first_page, streak = 0, None, 0
        previous = None
        for w in sorted(flags):
            # Consecutive windows only: a gap (windows not in both checkpoints) ends a streak.
            streak = streak + 1 if flags[w] and previous == w - 1 else int(flags[w])
            previous = w
            if streak == args.for_windows:  # the rule fires
                if w < first_shifted:
                    pages += 1
                elif first_page is None:
                    first_page = w - first_shifted + 1
        per_month = pages / max(len(quiet), 1) * 30 * WINDOWS_PER_DAY
        label = f"{source}, in one BH family with the defaults' rows" if joined else f"{source}, onset rows alone"
        print(f"| {rows} | {label} | {len(quiet)} | {sum(flags[w] for w in quiet)} | {pages} | {per_month:.2f} | "
              f"{len(shifted)} | {first_page or ('not paged' if shifted else '-')} |")


def onsets(args: argparse.Namespace, scores: Callable[[int, float], dict[str, float]]) -> None:
    """The shift started at `--onsets` different times of day: paged within 3 windows by the onset rows alone
    (the reference rows at p = 1)? Judged both ways: the pipeline's one combined row (a family of 36 + 1) and one row
    per field (36 + 2)."""
    month_scores = {}
    if month_path(args).exists():
        month_scores = {int(r["w"]): with_combined(r["scores"])
                        for r in map(json.loads, month_path(args).read_text().splitlines())}
    first = round(args.shift_day * WINDOWS_PER_DAY)
    history = [month_scores[v] for v in range(first - HISTORY_ROWS, first) if v in month_scores]
    if len(history) < MIN_HISTORY:
        raise SystemExit(f"--onsets needs the --month checkpoint's last day before --shift-day ({len(history)} of "
                         f"windows {first - HISTORY_ROWS}..{first - 1} there): run --month {first - HISTORY_ROWS} "
                         f"{first} first")
    fields = sorted(k for k in history[0] if k != COMBINED)
    lams = {k: lam([h[k] for h in history if np.isfinite(h[k])]) for k in [*fields, COMBINED]}
    ways = {"combined": [COMBINED], "per field": fields}
    print(f"\n## {args.onsets} onsets of {args.shift:.0%} new intents from day {args.shift_day:g}, one every "
          f"{24 / args.onsets:g} hours; onset rows (trailing {args.trailing} windows) judged with the history λ of the "
          f"day before ({', '.join(f'{k} {v:.2f}' for k, v in lams.items())}), BH at {args.alpha} with the "
          f"{args.family} reference rows at p = 1, a page at {args.for_windows} consecutive flagged\n")
    print("| onset (window) | hour | scores of windows 1, 2, 3 (prompt / response / combined) | flagged: combined | "
          "paged at | flagged: per field | paged at |")
    print("|---|---:|---|---|---:|---|---:|")
    paged, started = dict.fromkeys(ways, 0), time.process_time()
    for i in range(args.onsets):
        w0 = first + round(i * WINDOWS_PER_DAY / args.onsets)
        day = w0 / WINDOWS_PER_DAY
        rows = [with_combined(scores(w, day)) for w in range(w0, w0 + 3)]
        cells = []
        for way, keys in ways.items():
            flags = []
            for row in rows:
                p = [deflated_p(row[k], lams[k]) if np.isfinite(row[k]) else 1.0 for k in keys]
                flags.append(bool(bh_decisions(p + [1.0] * args.family, args.alpha).any()))
            at = next((j + 1 for j in range(args.for_windows - 1, 3)
                       if all(flags[j - args.for_windows + 1: j + 1])), None)
            paged[way] += at is not None
            cells.append(f"{''.join('x' if f else '.' for f in flags)} | {at or 'not paged'}")
        print(f"| {w0} | {(w0 % WINDOWS_PER_DAY) / 12:.1f} | "
              + ", ".join(" / ".join(f"{r[k]:.1f}" for k in [*fields, COMBINED]) for r in rows)
              + f" | {' | '.join(cells)} |")
    print(f"\npaged within 3 windows: combined {paged['combined']} of {args.onsets}, per field {paged['per field']} of "
          f"{args.onsets} ({time.process_time() - started:.0f} CPU-s)")


def default_rows(windows: list[int]) -> dict[int, list[float]]:
    """The calibrated p-values of the default rows (`mmd` + `knn`, 9 segments x 2 fields) of each window that
    bench/quiet_month.py's default run has checkpointed (its own calibrations and segment λ, as `--rejudge` judges
    them), so the onset rows can be judged in the window's whole BH family, as the pipeline would."""
    from bench.quiet_month import (
        Calibration,
        calibration_path,
        checkpoint_path,
        effective_calibrations,
        parse_args,
    )

    month_args = parse_args(["--days", "30"])
    cals = calibration_path(month_args)
    # The month's checkpoint, and any slices of it run on their own (`--start-day`, e.g. the shift's first windows
    # while the month has not reached them): a window is a function of its index, so both hold the same rows.
    month_path_ = checkpoint_path(month_args)
    paths = [month_path_, *sorted(month_path_.parent.glob(month_path_.stem + "_start_day*.jsonl"))]
    paths = [p for p in dict.fromkeys(paths) if p.exists()]
    if not paths or not cals.exists():
        return {}
    own: dict[tuple[str, str], dict[str, Calibration]] = {}
    for key, cal in json.loads(cals.read_text()).items():
        label, field, method = key.split("|")
        own.setdefault((label, field), {})[method] = Calibration.from_dict(cal)
    eff = effective_calibrations(own)
    wanted, out = set(windows), {}
    for path in paths:
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                break
            if row.get("w") in wanted:
                out[int(row["w"])] = [deflated_p(float(score),
                                                 eff[(k.split("|")[0], k.split("|")[1])][k.split("|")[2]].lam)
                                      for k, score in row["scores"].items()]
    return out


def reference_knn_lambda() -> dict[str, float]:
    """`all`'s `knn` λ per field from quiet_month's calibrations: what the pipeline's onset row borrows while its
    history is short (monitor/drift/onset.borrowed_calibration)."""
    from bench.quiet_month import calibration_path, parse_args

    cals = calibration_path(parse_args(["--days", "30"]))
    if not cals.exists():
        return {}
    return {key.split("|")[1]: float(cal["lam"]) for key, cal in json.loads(cals.read_text()).items()
            if key.startswith("all|") and key.endswith("|knn")}


def month(args: argparse.Namespace, scores: Callable[[int], dict[str, float]]) -> None:
    """Every window of [FIRST, END) plus the pinned day's (negative indices: λ from the day, as above), appended to
    a checkpoint as they finish; windows already in it are skipped."""
    path = month_path(args)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = {json.loads(line)["w"] for line in path.read_text().splitlines()} if path.exists() else set()
    first, end = args.month
    todo = [w for w in [*range(args.trailing - WINDOWS_PER_DAY, 0), *range(first, end)] if w not in done]
    started = time.perf_counter()
    with path.open("a") as out:
        for i, w in enumerate(todo):
            out.write(json.dumps({"w": w, "scores": scores(w)}) + "\n")
            out.flush()
            print(f"window {w} ({i + 1}/{len(todo)}, {time.perf_counter() - started:.0f} s)", file=sys.stderr,
                  flush=True)


if __name__ == "__main__":
    main()
