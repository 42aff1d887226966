"""A month of non-stationary quiet traffic through the default drift decision: how many false pages?

    python bench/quiet_month.py --jobs 2                 # 30 days, shift from day 20 (~10 CPU-hours at mmd + knn)
    python bench/quiet_month.py --days 0.25 --shift-day 0.2   # a slice; re-run the same command to resume
    python bench/quiet_month.py --days 1                 # ... or with more --days to extend a run in place
    python bench/quiet_month.py --methods novelty --start-day 19.98 --days 20.05   # the shift, one detector
    python bench/quiet_month.py --methods mmd,knn,novelty --days 1 --rejudge A.jsonl B.jsonl   # subsets combined
    python bench/quiet_month.py --profile 3 --profile-check   # CPU-s a window; the sequential stop checked

Traffic (public HWU64 queries, held out from every calibration choice; bench/data/README.md): 5-minute
windows of ~1,000 events (Poisson), 8 segments (`region` r0..r7, each with its own fixed intent tilt)
plus `all`. Intent shares follow a daily cycle (every intent its own phase, ±50%) times log-normal noise
(sd 0.2) whose level changes from hour to hour of the calendar (interpolated), so no two hours and no two
days have the same mix. Both fields: the prompt is the query; the
response field is another query of the same intent (the dataset has no responses; it moves with the intent
mix as a bot's answers would). Ten intents (each from a domain that keeps others) never occur until
`--shift-day`; from then on 15% of every window comes from them. Queries come from `hwu64_full` (11,033), each
intent's split in two seeded halves: the reference day's prompts and responses from one, the live windows' from
the other, so no window query is verbatim in the reference (printed at the start: 0.0%; the earlier simulator,
one 3,503-query pool for both, `--dataset hwu64 --shared-pool`, had 74.7% of window 0's prompts in `all`'s).

Decision, exactly as the pipeline at defaults: reference = a pinned day (day 0 of the same simulator,
cut to `--reference-size` per segment as the pipeline cuts a reference to `drift_max_samples`: 16 evenly spaced runs of
consecutive events), the project's default
`drift_methods` (or `--methods`) calibrated on it per segment and field (monitor/drift/thresholds.py; window
sizes bucketed to a power of two as the pipeline does), each segment's λ at least `all`'s carried to it
(`with_segment_lambda`), Benjamini-Hochberg at 0.01 over the window's rows (9 segments x 2 fields x methods).
Pages follow the alert-rule semantics: one rule per drift metric (field x method) over every segment with
`field = flagged`, `for_windows` (default 2) consecutive flagged windows fire it, an unflagged window resolves
it, and a page is a transition to firing.

Reported: false pages before the shift (and per 30 days), flagged windows before it, windows from the shift
to the first page, and the same scores judged with each segment's own λ only. Progress is checkpointed in
bench/results/quiet_month_<args>.jsonl (one line per window, with every row's normal score) after every window,
and the reference's calibrations in bench/results/quiet_month_calibrations_<args>.json (shared by runs over other
day ranges). `--jobs N` forks N workers (calibrations, then windows in order); every window's events and seeds
are a function of its index, so results do not depend on N (checked: 1 vs 2 give identical checkpoints).
"""

from __future__ import annotations

import argparse
import inspect
import json
import multiprocessing as mp
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.drift import get_detector  # noqa: E402
from monitor.drift.budget import bh_decisions, monthly_false_pages  # noqa: E402
from monitor.drift.calibration import IntentPool, load_intent_pool, query_key, split_intent_rows  # noqa: E402
from monitor.drift.null import deflated_p  # noqa: E402
from monitor.drift.result import DriftResult  # noqa: E402
from monitor.drift.thresholds import (  # noqa: E402
    CALIBRATED_METHODS,
    Calibration,
    apply_calibration,
    calibrate_methods,
    result_score,
    with_segment_lambda,
)
from monitor.pipeline.calibrations import window_bucket  # noqa: E402
from monitor.pipeline.sampling import run_sample  # noqa: E402

FIELDS = ("prompt", "response")

WINDOWS_PER_DAY = 288


class Simulator:
    """Seeded quiet traffic with a daily cycle, per-window noise, segment tilts, and an optional shift."""

    def __init__(self, pool: IntentPool, *, segments: int, seed: int, n_new: int = 10, disjoint: bool = True) -> None:
        self.pool = pool
        rng = np.random.default_rng(seed)
        self.new = set(rng.choice(pool.eligible_new_intents(), n_new, replace=False).tolist())
        names = sorted(set(pool.intents.tolist()))
        self.usual = [n for n in names if n not in self.new]
        self.phases = rng.uniform(0, 2 * np.pi, len(self.usual))
        self.tilts = np.exp(0.3 * rng.standard_normal((segments, len(self.usual))))
        # Disjoint query pools: the pinned reference day draws from one seeded half of each intent's queries, the
        # live windows from the other, so no window query has a verbatim copy in the reference (real traffic
        # repeats some queries, but not three in four, which a shared 3,503-query pool gave). `disjoint=False`:
        # the earlier simulator, one pool for both.
        if disjoint:
            self.rows = dict(zip(("reference", "live"), split_intent_rows(pool, seed), strict=True))
        else:
            shared = {n: np.flatnonzero(pool.intents == n) for n in names}
            self.rows = {"reference": shared, "live": shared}
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

    def events(self, t0: float, t1: float, n: int, shift: float, key: int,
               side: str = "live") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(prompt rows, response rows, segment) of n events between days t0 and t1, sorted by time, with queries
        from the `reference` or the `live` pool."""
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
        rows = self.rows[side]
        prompt = np.array([rng.choice(rows[x]) for x in intents])
        response = np.array([rng.choice(rows[x]) for x in intents])
        return prompt, response, seg


def segment_labels(segments: int) -> list[str]:
    return ["all", *[f"region=r{i}" for i in range(segments)]]


def masks(seg: np.ndarray, segments: int) -> dict[str, np.ndarray]:
    out = {"all": np.ones(seg.size, dtype=bool)}
    out.update({f"region=r{i}": seg == i for i in range(segments)})
    return out


def default_methods() -> tuple[str, ...]:
    """The project default `drift_methods` (monitor/pipeline/config.py): the bench judges what a project gets."""
    from monitor.pipeline.config import ProjectConfig

    return tuple(ProjectConfig().drift_methods)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
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
    parser.add_argument("--reference-sampling", choices=("runs", "uniform"), default="runs",
                        help="how the pinned day is cut to --reference-size: 2 x calibration-blocks runs of "
                        "consecutive events, as the pipeline does since 2026-12-06 (default), or a uniform sample "
                        "(before)")
    parser.add_argument("--seed", type=int, default=30)
    parser.add_argument("--dataset", default="hwu64_full", choices=("hwu64_full", "hwu64"),
                        help="query pool: hwu64_full (11,033 HWU64 queries, default) or the 3,503-row hwu64 extract")
    parser.add_argument("--shared-pool", action="store_true",
                        help="reference and windows from one query pool (the simulator before 2026-12-06); default: "
                        "disjoint halves of each intent's queries")
    parser.add_argument("--methods", default=None,
                        help="comma-separated drift methods (default: the project default `drift_methods`)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes: calibrations and windows in parallel (results do not depend on it: "
                        "every window's events and detector seeds are a function of its index)")
    parser.add_argument("--profile", type=int, default=0, metavar="W",
                        help="only time the detector calls of W windows from --start-day (CPU-s a window, one BLAS "
                        "thread, after one window that fills the reference cache; no calibration, no checkpoint)")
    parser.add_argument("--profile-top", type=int, default=0, metavar="K",
                        help="with --profile: also print cProfile's K most expensive functions (cumulative)")
    parser.add_argument("--profile-check", action="store_true",
                        help="with --profile: run every call again drawing all permutations (sequential=False) and "
                        "compare the normal scores (untimed)")
    parser.add_argument("--report-only", action="store_true", help="report the checkpoint of these arguments as it is")
    parser.add_argument("--rejudge", nargs="+", type=Path, metavar="CHECKPOINT",
                        help="judge the windows these checkpoints (of subsets of --methods) share as one run of "
                        "--methods, from their stored scores (needs this method set's calibrations)")
    args = parser.parse_args(argv)
    args.methods = tuple(args.methods.split(",")) if args.methods else default_methods()
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    return args


def _tag(args: argparse.Namespace, skip: tuple[str, ...]) -> str:
    return "_".join(f"{k}{','.join(v) if isinstance(v, tuple) else v}" for k, v in sorted(vars(args).items())
                    if k not in skip and not (k == "start_day" and v == 0.0))


_NOT_IN_NAME = ("report_only", "jobs", "days", "rejudge", "profile", "profile_top", "profile_check")


def checkpoint_path(args: argparse.Namespace) -> Path:
    """The checkpoint of these arguments. `--jobs` and `--report-only` do not change results, and `--days` only
    where the run stops (a window is a function of its index), so none of them is in the name: a run is extended
    by running it again with more days."""
    return ROOT / "bench" / "results" / f"quiet_month_{_tag(args, _NOT_IN_NAME)}.jsonl"


CALIBRATION_ARGS = ("alpha", "calibration_blocks", "dataset", "events", "methods", "reference_sampling",
                    "reference_size", "seed", "segments", "shared_pool")


def calibration_path(args: argparse.Namespace) -> Path:
    """The reference's calibrations depend on these arguments only: runs over other day ranges or shifts share
    them (they cost minutes at 2,000-row references)."""
    skip = tuple(k for k in vars(args) if k not in CALIBRATION_ARGS)
    return ROOT / "bench" / "results" / f"quiet_month_calibrations_{_tag(args, skip)}.json"


class Run:
    """What every window needs: the simulator, the references, their calibrations (each segment's with the
    whole traffic's λ carried to it, as in the pipeline). Built once in the parent; `--jobs` workers are forked
    and inherit it."""

    def __init__(self, args: argparse.Namespace, state: dict[str, Any]) -> None:
        self.args = args
        self.pool = load_intent_pool(args.dataset)
        self.sim = Simulator(self.pool, segments=args.segments, seed=args.seed, disjoint=not args.shared_pool)
        self.labels = segment_labels(args.segments)
        # The reference: a pinned day (day -1 .. 0 of the simulator), subsampled per segment in arrival order.
        day = [self.sim.events(-1.0 + w / WINDOWS_PER_DAY, -1.0 + (w + 1) / WINDOWS_PER_DAY, args.events, 0.0,
                               key=10**6 + w, side="reference")
               for w in range(WINDOWS_PER_DAY)]  # window by window: every window its own noise, as in the stream
        rp, rr, rs = (np.concatenate([d[i] for d in day]) for i in range(3))
        self.ref: dict[tuple[str, str], np.ndarray] = {}
        self.ref_texts: dict[tuple[str, str], set[str]] = {}
        self.runs = 2 * args.calibration_blocks
        self.sampled: dict[str, bool] = {}
        rng = np.random.default_rng(args.seed)
        for label, m in masks(rs, args.segments).items():
            idx = np.flatnonzero(m)
            size = min(idx.size, 2 * args.reference_size if label == "all" else args.reference_size)
            # As the pipeline samples a reference larger than drift_max_samples: runs of consecutive events.
            keep = run_sample(idx, size, self.runs) if args.reference_sampling == "runs" else \
                np.sort(rng.choice(idx, size, replace=False))
            self.sampled[label] = idx.size > size
            for field, rows in (("prompt", rp), ("response", rr)):
                self.ref[(label, field)] = self.pool.vectors[rows[keep]]
                self.ref_texts[(label, field)] = {query_key(self.pool.texts[i]) for i in rows[keep]}
        # Window sizes as the pipeline buckets them (a power of two: 1,024 for `all`, 128 for a segment).
        self.n_window = {label: window_bucket(int(args.events * (1 if label == "all" else 1 / args.segments)))
                         for label in self.labels}
        self.calibrated = tuple(m for m in args.methods if m in CALIBRATED_METHODS)
        self.own: dict[tuple[str, str], dict[str, Calibration]] = {}
        self.eff: dict[tuple[str, str], dict[str, Calibration]] = {}
        if "calibrations" in state:  # a resumed run reads them back: they are a function of the arguments
            for key, cal in state["calibrations"].items():
                label, field, method = key.split("|")
                self.own.setdefault((label, field), {})[method] = Calibration.from_dict(cal)

    def verbatim_overlap(self, w: int) -> dict[str, float]:
        """Share of window `w`'s prompts and responses whose text, up to case and spacing (MiniLM is uncased), is in
        `all`'s reference ("prompt", "response") or in any segment's ("prompt any", "response any"): 0 with
        disjoint pools; with the earlier shared 3,503-query pool 74.8% / 99.9% of a quiet window's prompts."""
        t0 = w / WINDOWS_PER_DAY
        shift = self.args.shift if t0 >= self.args.shift_day else 0.0
        n = int(np.random.default_rng([self.args.seed, w, 7]).poisson(self.args.events))
        cp, cr, _ = self.sim.events(t0, t0 + 1 / WINDOWS_PER_DAY, n, shift, key=w)
        out = {}
        for field, rows in (("prompt", cp), ("response", cr)):
            keys = [query_key(self.pool.texts[i]) for i in rows]
            anywhere = set().union(*(texts for (_, f), texts in self.ref_texts.items() if f == field))
            out[field] = float(np.mean([k in self.ref_texts[("all", field)] for k in keys]))
            out[f"{field} any"] = float(np.mean([k in anywhere for k in keys]))
        return out

    def calibrate(self, keys: list[tuple[str, str]], jobs: int) -> None:
        """Calibrations of the given (segment, field) references, `jobs` at a time."""
        global _RUN
        _RUN = self
        if jobs > 1:
            with mp.get_context("fork").Pool(jobs) as workers:
                done = workers.map(_calibrate_one, keys, chunksize=1)
        else:
            done = [_calibrate_one(key) for key in keys]
        self.own.update(dict(zip(keys, done, strict=True)))

    def effective(self) -> dict[tuple[str, str], dict[str, Calibration]]:
        return effective_calibrations(self.own)

    def calls(self, w: int) -> tuple[float, int, list[tuple[str, str, str, np.ndarray]]]:
        """(shift, events, [(segment, field, method, current rows)]) of window w: the detector calls it makes."""
        args = self.args
        t0 = w / WINDOWS_PER_DAY
        shift = args.shift if t0 >= args.shift_day else 0.0
        n = int(np.random.default_rng([args.seed, w, 7]).poisson(args.events))
        cp, cr, cs = self.sim.events(t0, t0 + 1 / WINDOWS_PER_DAY, n, shift, key=w)
        out: list[tuple[str, str, str, np.ndarray]] = []
        for label, m in masks(cs, args.segments).items():
            for field, rows in (("prompt", cp), ("response", cr)):
                cur = self.pool.vectors[rows[m]]
                if cur.shape[0] < 100:  # drift_min_samples: insufficient, not judged
                    continue
                out.extend((label, field, method, cur) for method in args.methods)
        return shift, n, out

    def detect(self, w: int, label: str, field: str, method: str, cur: np.ndarray) -> DriftResult:
        return get_detector(method)(self.ref[(label, field)], cur, alpha=self.args.alpha, seed=w, min_effect=0.0)

    def window(self, w: int) -> dict[str, Any]:
        """One window's rows: every (segment, field, method) test, BH over them with segment λ."""
        args = self.args
        shift, n, calls = self.calls(w)
        keys, p_cal, scores = [], [], []
        for label, field, method, cur in calls:
            key = f"{label}|{field}|{method}"
            res = self.detect(w, label, field, method, cur)
            if method in self.calibrated:
                judged = apply_calibration(res, self.eff[(label, field)][method], args.alpha)
                p_cal.append(float(judged.details["p_calibrated"]))
                scores.append(round(float(judged.details["score"]), 4))
            else:  # an uncalibrated method: its own p-value enters the budget
                p_cal.append(float(res.p_value if res.p_value is not None else 1.0))
                scores.append(round(float(result_score(res)), 4))
            keys.append(key)
        flags = bh_decisions(p_cal, args.alpha) if p_cal else np.zeros(0, dtype=bool)
        # The raw normal scores are kept with the flags, so other decision rules (budget level, persistence, own
        # λ only) can be judged on the very same detector runs without running them again.
        return {"w": w, "shift": shift, "n": n, "flagged": [k for k, f in zip(keys, flags, strict=True) if f],
                "scores": dict(zip(keys, scores, strict=True))}


def effective_calibrations(
    own: dict[tuple[str, str], dict[str, Calibration]],
) -> dict[tuple[str, str], dict[str, Calibration]]:
    """Each segment's calibration with `all`'s λ carried to it (`with_segment_lambda`, as the pipeline)."""
    out = {}
    for (label, field), cals in own.items():
        whole = own[("all", field)]
        out[(label, field)] = cals if label == "all" else {
            m: with_segment_lambda(c, whole[m]) if m in whole else c for m, c in cals.items()}
    return out


def rejudge(args: argparse.Namespace, paths: list[Path]) -> dict[str, Any]:
    """The windows the given checkpoints have in common, judged as one run with `--methods`: every row's stored
    normal score, each method's calibration for this method set (its shared stationarity gate), segment λ, BH
    over the window's rows. A detector's score depends only on the window, the reference and the seed, so
    checkpoints of method subsets combine into exactly what a run of their union computes."""
    shared = calibration_path(args)
    if not shared.exists():
        raise SystemExit(f"no calibrations for these arguments ({shared}): run them once first (e.g. --days 0)")
    stored = json.loads(shared.read_text())
    own: dict[tuple[str, str], dict[str, Calibration]] = {}
    for key, cal in stored.items():
        label, field, method = key.split("|")
        own.setdefault((label, field), {})[method] = Calibration.from_dict(cal)
    eff = effective_calibrations(own)
    first, total = round(args.start_day * WINDOWS_PER_DAY), round(args.days * WINDOWS_PER_DAY)
    merged: dict[int, dict[str, Any]] | None = None
    for path in paths:
        rows = {}
        for line in path.read_text().splitlines():
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                break
            if "w" in item and first <= item["w"] < total:
                rows[item["w"]] = item
        if merged is None:
            merged = {w: {**row, "scores": dict(row["scores"])} for w, row in rows.items()}
            continue
        for w in list(merged):
            if w not in rows or rows[w]["shift"] != merged[w]["shift"] or rows[w]["n"] != merged[w]["n"]:
                del merged[w]
            else:
                merged[w]["scores"].update(rows[w]["scores"])
    windows = []
    for w in sorted(merged or {}):
        row = merged[w]  # type: ignore[index]
        keys = [k for k in row["scores"] if k.split("|")[2] in args.methods]
        p_values = []
        for key in keys:
            label, field, method = key.split("|")
            cal = eff[(label, field)][method]
            if cal.source == "fallback":  # the raw p-value is not stored; never the case at these reference sizes
                raise SystemExit(f"{key}: fallback calibration, cannot be judged from the stored score")
            p_values.append(deflated_p(float(row["scores"][key]), cal.lam))
        flags = bh_decisions(p_values, args.alpha) if p_values else np.zeros(0, dtype=bool)
        windows.append({"w": w, "shift": row["shift"], "n": row["n"],
                        "flagged": [k for k, f in zip(keys, flags, strict=True) if f],
                        "scores": {k: row["scores"][k] for k in keys}})
    return {"args": vars(args), "windows": windows, "calibrations": stored}


_RUN: Run | None = None
"""The run a forked worker inherits (set in the parent before the pool starts)."""


def _calibrate_one(key: tuple[str, str]) -> dict[str, Calibration]:
    assert _RUN is not None
    args = _RUN.args
    return calibrate_methods(_RUN.ref[key], _RUN.calibrated, seed=args.seed, window_size=_RUN.n_window[key[0]],
                             alpha=args.alpha, n_blocks=args.calibration_blocks,
                             runs=_RUN.runs if args.reference_sampling == "runs" and _RUN.sampled[key[0]] else None) \
        if _RUN.calibrated else {}


def _window(w: int) -> tuple[dict[str, Any], float]:
    assert _RUN is not None
    cpu = time.process_time()
    row = _RUN.window(w)
    return row, time.process_time() - cpu


def main(argv: list[str] | None = None) -> None:
    global _RUN
    args = parse_args(argv)
    if args.rejudge:
        report(rejudge(args, args.rejudge), args)
        return
    if args.profile:
        profile(args)
        return
    ckpt = checkpoint_path(args)
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    state = load_checkpoint(ckpt, args)
    if args.report_only:
        report(state, args)
        return

    started = time.perf_counter()
    in_checkpoint = "calibrations" in state
    shared = calibration_path(args)
    if not in_checkpoint and shared.exists():
        state["calibrations"] = json.loads(shared.read_text())
    run = Run(args, state)
    missing = [(label, field) for label in run.labels for field in FIELDS if (label, field) not in run.own]
    if missing:
        run.calibrate(missing, args.jobs)
        state["calibrations"] = {f"{k[0]}|{k[1]}|{m}": c.to_dict() for k, v in run.own.items() for m, c in v.items()}
        shared.write_text(json.dumps(state["calibrations"]))
    if not in_checkpoint or missing:  # the checkpoint records what its windows were judged with
        with ckpt.open("a") as out:
            out.write(json.dumps({"calibrations": state["calibrations"]}) + "\n")
    run.eff = run.effective()
    _RUN = run
    lam = {f"{k[0]}|{k[1]}|{m}": c.lam for k, v in run.own.items() for m, c in v.items()}
    eff = {f"{k[0]}|{k[1]}|{m}": c.lam for k, v in run.eff.items() for m, c in v.items()}
    print("λ of `all`: " + ", ".join(f"{k.split('|', 1)[1]} {v:.1f}" for k, v in lam.items() if k.startswith("all|")),
          file=sys.stderr, flush=True)
    print(f"reference calibrated in {time.perf_counter() - started:.0f} s; own λ > 1 for "
          f"{sum(v > 1 for v in lam.values())} of {len(lam)} (segment, field, method), with `all`'s carried "
          f"{sum(v > 1 for v in eff.values())}; max λ {max(lam.values(), default=1.0):.2f}",
          file=sys.stderr, flush=True)

    total = round(args.days * WINDOWS_PER_DAY)
    first = round(args.start_day * WINDOWS_PER_DAY)
    probe = sorted({first, max(first, round(args.shift_day * WINDOWS_PER_DAY))})  # a quiet and a shifted window
    overlap = {w: run.verbatim_overlap(w) for w in probe}
    print(f"queries: {args.dataset}, {'one shared pool' if args.shared_pool else 'disjoint reference / live halves'}; "
          "window queries verbatim in `all`'s reference (in any segment's): " + "; ".join(
              f"window {w} prompts {o['prompt']:.1%} ({o['prompt any']:.1%}), responses {o['response']:.1%} "
              f"({o['response any']:.1%})" for w, o in overlap.items()),
          flush=True)
    done = {row["w"] for row in state["windows"]}
    todo = [w for w in range(first, total) if w not in done]
    loop = time.perf_counter()
    cpu_total = 0.0
    workers = mp.get_context("fork").Pool(args.jobs) if args.jobs > 1 else None
    try:
        results = workers.imap(_window, todo, chunksize=1) if workers else map(_window, todo)
        for i, (row, cpu) in enumerate(results, start=1):  # in window order: the checkpoint stays ordered
            state["windows"].append(row)
            with ckpt.open("a") as out:  # append-only: a month is ~8,640 lines, never rewritten
                out.write(json.dumps(row) + "\n")
            cpu_total += cpu
            elapsed = time.perf_counter() - loop
            print(f"\rwindow {row['w'] + 1}/{total} day {row['w'] / WINDOWS_PER_DAY:.2f} flagged {len(row['flagged'])} "
                  f"({elapsed:.0f} s, {i / elapsed * 3600:.0f} windows/hour, {cpu_total / i:.1f} CPU-s/window)",
                  end="", file=sys.stderr, flush=True)
    finally:
        if workers:
            workers.terminate()
    print(file=sys.stderr)
    report(state, args)


def profile(args: argparse.Namespace) -> None:
    """CPU seconds of the detector calls of `--profile` windows (the cost of a window without the judging, which
    is microseconds), by detector and call shape; the first window fills the per-process reference cache and is
    reported apart. Optionally cProfile's top functions over the timed windows."""
    import cProfile
    import pstats

    from monitor.drift.determinism import single_blas_thread

    run = Run(args, {})
    first = round(args.start_day * WINDOWS_PER_DAY)
    per_call: dict[str, list[float]] = {}
    drawn: dict[str, list[int]] = {}
    results: list[tuple[int, str, str, str, np.ndarray, DriftResult]] = []
    prof = cProfile.Profile() if args.profile_top else None
    with single_blas_thread():
        for i, w in enumerate(range(first, first + args.profile + 1)):
            _, _, calls = run.calls(w)
            if prof is not None and i == 1:
                prof.enable()
            cpu = time.process_time()
            for label, field, method, cur in calls:
                start = time.process_time()
                res = run.detect(w, label, field, method, cur)
                shape = f"{method} {run.ref[(label, field)].shape[0]} vs {'~1,000' if label == 'all' else '~125'}"
                if i > 0:
                    per_call.setdefault(shape, []).append(time.process_time() - start)
                    drawn.setdefault(shape, []).append(int(res.details.get("permutations_drawn", 0)))
                    results.append((w, label, field, method, cur, res))
            cpu = time.process_time() - cpu
            print(f"window {w}{' (fills the reference cache)' if i == 0 else ''}: {len(calls)} calls, {cpu:.2f} CPU-s",
                  flush=True)
    if prof is not None:
        prof.disable()
    windows = args.profile
    print("\n| call | calls a window | CPU-s a call (mean) | CPU-s a window |\n|---|---:|---:|---:|")
    for shape, times in sorted(per_call.items()):
        print(f"| {shape} | {len(times) / windows:.0f} | {np.mean(times):.4f} | {sum(times) / windows:.3f} |")
    print(f"| all | | | {sum(sum(t) for t in per_call.values()) / windows:.3f} |")
    counts = {shape: ", ".join(f"{k} x{v}" for k, v in sorted(Counter(d).items())) for shape, d in drawn.items()}
    print("\npermutations drawn (sequential stop): " + "; ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    if args.profile_check:
        check_sequential(run, results)
    if prof is not None:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(args.profile_top)


def check_sequential(run: Run, results: list[tuple[int, str, str, str, np.ndarray, DriftResult]]) -> None:
    """Every profiled call again with all permutations drawn: how far the sequential stop moved the normal score
    the decision reads, and whether any moved row could have been flagged (score ≥ Φ⁻¹(1 - alpha), the least a
    row needs at any λ ≥ 1 under BH at alpha)."""
    from scipy.stats import norm

    from monitor.drift.registry import get_spec

    need = float(norm.isf(run.args.alpha))
    changed, same, p_only, worst, top = 0, 0, 0, 0.0, -np.inf
    for w, label, field, method, cur, res in results:
        func = get_spec(method).func
        if "sequential" not in inspect.signature(getattr(func, "__wrapped__", func)).parameters:
            continue
        full = get_detector(method)(run.ref[(label, field)], cur, alpha=run.args.alpha, seed=w, min_effect=0.0,
                                    sequential=False)
        a, b = result_score(res), result_score(full)
        if a == b:  # all permutations drawn: the same null; only the p-value's formula may differ (p ≥ 2·alpha)
            same += res.p_value == full.p_value
            p_only += res.p_value != full.p_value
            continue
        changed += 1
        worst = max(worst, abs(a - b))
        top = max(top, a, b)
    print(f"\nsequential vs all permutations: {same} rows identical, {p_only} with the same score and a sequential p "
          f"(≥ {2 * run.args.alpha}), {changed} with another score (largest |score change| "
          f"{worst:.3f}; largest score of a changed row {top:.2f}, a flag needs ≥ {need:.2f}): "
          f"{'no decision can differ' if changed == 0 or top < need else 'CHECK: a changed row is near a threshold'}")


def load_checkpoint(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """{"args", "windows", and "calibrations" once calibrated} from the append-only checkpoint (created if missing).
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
        elif "calibrations" in item:
            state["calibrations"] = item["calibrations"]
    if len(good) < len(lines) and not args.report_only:  # a report beside a running run must not rewrite its file
        path.write_text("".join(f"{line}\n" for line in good))
    state["windows"].sort(key=lambda row: row["w"])
    # Only the windows of this run's day range (a longer run of the same checkpoint may have written more).
    first, total = round(args.start_day * WINDOWS_PER_DAY), round(args.days * WINDOWS_PER_DAY)
    state["windows"] = [row for row in state["windows"] if first <= row["w"] < total]
    return state


def pages(state: dict[str, Any], args: argparse.Namespace, need: int, of: int) -> tuple[int, int | None]:
    """(false pages before the shift, windows from the shift to the first page) when a rule fires once `need` of
    its last `of` windows are flagged (need = of = for_windows: the alert rule's consecutive windows). One rule
    per drift metric (field x method) and segment; a page is a transition to firing."""
    rules = [f"{f}|{m}" for f in FIELDS for m in args.methods]
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


def judge_own_lambda(state: dict[str, Any], args: argparse.Namespace) -> None:
    """The stored scores judged again with every segment's own λ only (the pipeline before segment λ), BH at
    alpha over the window's rows as before: what `with_segment_lambda` changes on the very same detector runs."""
    cals = state.get("calibrations")
    windows = [row for row in state["windows"] if "scores" in row]
    if not cals or not windows:
        return
    flagged = []
    for row in windows:
        keys = list(row["scores"])
        p_values = [deflated_p(float(row["scores"][key]), float(cals[key]["lam"])) if key in cals else 1.0
                    for key in keys]
        flags = bh_decisions(p_values, args.alpha)
        flagged.append({**row, "flagged": [k for k, f in zip(keys, flags, strict=True) if f]})
    quiet = [row for row in flagged if row["shift"] == 0]
    quiet_pages, first = pages({"windows": flagged}, args, args.for_windows, args.for_windows)
    print(f"\nWithout segment λ (each segment's own λ only; same {len(windows)} windows, same scores): "
          f"{sum(bool(r['flagged']) for r in quiet)} of {len(quiet)} quiet windows flagged, "
          f"{sum(len(r['flagged']) for r in quiet)} rows, {quiet_pages} false pages; "
          f"first page after the shift: {first or 'not paged'}")


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
    rows = len(segment_labels(args.segments)) * len(FIELDS) * len(args.methods)
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
    judge_own_lambda(state, args)
    print("\nThe same flags under other persistence rules (a rule fires when `need` of its last `of` windows are "
          "flagged):\n\n| rule | false pages | per 30 days | windows from the shift to the first page |\n"
          "|---|---:|---:|---:|")
    for need, of in ((1, 1), (2, 2), (2, 3), (3, 3)):
        false_pages, first = pages(state, args, need, of)
        per_month = f"{false_pages / days * 30:.2f}" if days > 0 else "-"
        print(f"| {need} of {of} | {false_pages} | {per_month} | {(first or 'not paged') if shift_start else '-'} |")


if __name__ == "__main__":
    main()
