"""The onset row's decision rule: a window against the trailing hours of the same traffic (issue #16).

The reference rows compare a window with a pinned day (or the first events). When the topic mix moves with the
hour, the calibration must absorb the whole daily cycle (λ 12-34 for `knn` on the quiet-month simulator), and a
shift the size of an hour's usual movement (15% new intents) stays under that bar. The hours just before a window
share most of its mix, while a shift that starts now is in the window and not in them: `knn` against the
trailing 3 hours stays near its own null on quiet windows (λ 1.0-1.5 there) and scores 3-5 in the shift's first
windows. The onset fades as the trailing span fills with the new traffic (after ~5-8 windows at 3 hours), by then
the alert has fired; a slow creep is the reference rows' job.

λ comes from the project's own history: genomic control (`inflation`) over the onset scores stored for the
windows before this one (at most `HISTORY_ROWS`, within `HISTORY_DAYS`). The median makes it robust to the few
windows a real onset moves. Until `MIN_HISTORY` scores exist, the row borrows the reference comparison's λ of the
same field (conservative: that λ absorbs the whole cycle), and without one the fixed fallback floor applies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
from scipy.stats import norm

from monitor.drift.null import inflation, required_score
from monitor.drift.result import DriftResult
from monitor.drift.thresholds import FALLBACK_FLOORS, Calibration, result_score

ONSET = "onset"
"""The row's method name."""
SERIES = "embeddings"
"""The row's series: one row over every embedded field, `drift.embeddings.onset`."""
FIELD_FLOOR = -4.0
"""A field's score below this counts as this when fields are combined: a window without a single isolated item
scores -inf, which would otherwise veto the other field's evidence (about the smallest finite scores seen)."""
DETECTOR = "knn"
"""The detector the row runs: its isolated count sees new neighbourhoods and is blind to the mix's reweighting
(λ near 1 against the trailing hours, where `mmd` still shows λ 2-7 on the same windows)."""
TRAILING_FACTOR = 4
"""Trailing rows sampled per window row (capped at `drift_max_samples`): 4,000 for a window of 1,000."""
HISTORY_ROWS = 288
"""Most recent stored onset scores λ is measured on: one day of 5-minute windows."""
HISTORY_DAYS = 7
MIN_HISTORY = 36
"""Stored onset scores needed before λ is measured on them (3 hours of 5-minute windows)."""
_BOOTSTRAP = 200


def finite_scores(values: Sequence[float | None]) -> list[float]:
    """The usable history: stored scores that are numbers. A window without a single isolated item scores -inf
    (stored as null); leaving it out moves λ up a little, the conservative side."""
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def history_calibration(scores: Sequence[float | None], *, alpha: float, window_size: int, n_trailing: int,
                        seed: int = 0) -> Calibration | None:
    """λ from the onset scores of the windows before this one; None when fewer than `MIN_HISTORY` are usable."""
    s = np.asarray(finite_scores(scores), dtype=np.float64)
    if s.size < MIN_HISTORY:
        return None
    lam = max(1.0, inflation(s))
    rng = np.random.default_rng(seed)
    boot = [max(1.0, inflation(s[rng.integers(0, s.size, s.size)])) for _ in range(_BOOTSTRAP)]
    low, high = (float(x) for x in np.quantile(boot, [0.05, 0.95]))
    reason = (f"genomic control over the onset scores of the {s.size} windows before this one (median score² / "
              f"median χ²₁): how far this project's quiet windows sit from their trailing hours")
    return Calibration(method=DETECTOR, lam=lam, lam_blocks=None, interval=(low, high), source="onset_history",
                       floor=0.0, alpha=alpha, score_threshold=required_score(alpha, lam), n_reference=n_trailing,
                       n_blocks=int(s.size), block_size=window_size, window_size=window_size, nonstationarity_p=None,
                       reason=reason)


def borrowed_calibration(reference: Calibration | None, *, history: int, alpha: float, window_size: int,
                         n_trailing: int) -> Calibration:
    """The rule while the history is short: the reference comparison's calibration of the same field (its λ
    absorbs the traffic's whole daily cycle, so the row is conservative), or the fixed fallback floor."""
    short = f"{history} onset scores stored before this window, {MIN_HISTORY} needed to measure λ on them"
    if reference is None or reference.source == "fallback":
        return Calibration(method=DETECTOR, lam=1.0, lam_blocks=None, interval=(1.0, 1.0), source="fallback",
                           floor=FALLBACK_FLOORS[DETECTOR], alpha=alpha, score_threshold=required_score(alpha, 1.0),
                           n_reference=n_trailing, n_blocks=0, block_size=window_size, window_size=window_size,
                           nonstationarity_p=None,
                           reason=f"{short}, and no calibrated reference row to borrow from: the conservative fixed "
                           f"rule (p <= alpha and effect >= {FALLBACK_FLOORS[DETECTOR]})")
    return replace(reference, method=DETECTOR, source="reference_lambda", n_reference=n_trailing,
                   block_size=window_size, window_size=window_size, alpha=alpha,
                   score_threshold=required_score(alpha, reference.lam),
                   reason=f"{short}: the reference comparison's λ of this field ({reference.method}, "
                   f"{reference.lam:.2f}) applies meanwhile, which absorbs the traffic's whole cycle (conservative)",
                   lam_from=None, lam_segment=None, lam_all=None, lam_all_carried=None)


def pick_reference(calibrations: dict[str, Calibration]) -> Calibration | None:
    """The reference calibration to borrow: `knn`'s (the same statistic), else the largest λ of the field."""
    if DETECTOR in calibrations:
        return calibrations[DETECTOR]
    usable = [c for c in calibrations.values() if c.source != "fallback"]
    return max(usable, key=lambda c: (c.lam, c.method)) if usable else None  # ties: by name, not by stored order


def combined_score(scores: Sequence[float]) -> float:
    """Stouffer's sum of the fields' normal scores / sqrt(#fields), each at least `FIELD_FLOOR`."""
    return float(sum(max(FIELD_FLOOR, s) for s in scores) / math.sqrt(len(scores)))


def combine_fields(results: Mapping[str, DriftResult], alpha: float) -> DriftResult:
    """One result over the fields' onset tests: Stouffer's sum of their normal scores / sqrt(#fields).

    A new topic changes what users ask and what the model answers, so both fields carry the onset; on the
    quiet-month simulator their quiet scores are nearly uncorrelated (r = -0.10), and the sum nearly doubles
    the evidence a single row has against a single bar. Under correlation the sum's null variance is 1 + r, not
    1: the history's genomic control measures it with the rest of the inflation."""
    if not results:
        raise ValueError("no field results to combine")
    scores = {f: max(FIELD_FLOOR, result_score(r)) for f, r in results.items()}
    z = combined_score(list(scores.values()))
    p = float(norm.sf(z))
    effects = [r.effect_size for r in results.values() if r.effect_size is not None]
    fields = {f: {"score": scores[f], "statistic": r.statistic, "p_value": r.p_value, "effect_size": r.effect_size,
                  "n_reference": r.n_reference, "n_current": r.n_current} for f, r in results.items()}
    return DriftResult(
        method=DETECTOR, statistic=z, p_value=p, threshold=alpha, is_drift=p <= alpha,
        effect_size=float(np.mean(effects)) if effects else None,
        n_reference=max(r.n_reference for r in results.values()),
        n_current=max(r.n_current for r in results.values()),
        details={"z": z, "null_skew": 0.0, "combined": "stouffer", "fields": fields},
    )
