"""Per-project drift thresholds from the reference's own variation over time (genomic control).

A drift test asks "is this window a sample of the reference distribution?". Real quiet traffic is not
one distribution: the topic mix moves with the hour and the weekday, so with windows of a thousand
events an exact test finds an hour that differs from the day's average "significant", correctly and
uselessly. The old answer, a fixed effect-size floor (0.05) calibrated on hand-written queries, also
hid real shifts between neighbouring intents. Here the test statistic itself is corrected by how much
the project's own traffic inflates it, the way genome-wide association studies correct for population
structure (genomic control, Devlin & Roeder 1999):

1. The reference rows, in arrival order, are cut into `n_blocks` (8) segments; 2 x n_blocks evenly
   spaced *time blocks* of `b` rows (`b` = the window size, at most a segment) are each compared with
   `2b` rows drawn from the rest of the reference by the detector's own permutation test (a window-sized
   piece of past traffic judged against the rest, like a window against the reference). Each
   comparison's evidence becomes a normal score (`monitor/drift/null.py`): N(0, 1) for the same traffic.
2. **Does the traffic move on its own?** The same for blocks of randomly chosen reference rows (pure
   sampling noise); a one-sided Mann-Whitney test asks whether the time blocks' scores exceed the random
   blocks' (signed scores: a random block below its null is no evidence of stationarity, and squaring
   would let it mask a movement), for each of mmd, knn and novelty that is configured (kNN's blocks stand in
   for the classifier's). Whether the traffic moves is one question about the traffic, so the p-values are
   combined by Bonferroni (#gated x the smallest) and every method (the classifier too) shares the verdict: a
   movement one statistic sees clearly and the other only weakly (kNN in blocks much smaller than the window)
   is calibrated for both. Not significant at `gate` (0.01): the traffic is stationary at this resolution,
   λ = 1, and the window's own null decides, which keeps full sensitivity on steady traffic.
3. **How much?** Otherwise λ_blocks = median(score²) / median(χ²₁) over the time blocks. A fixed
   difference's chi-square excess grows linearly with the comparison's effective size
   (score ~ √h · δ, h = n·N/(n + N)), so it is carried from the blocks (h_block = b·2b/3b) to the window
   test (h_window for n window rows against N reference rows): λ = 1 + (λ_blocks - 1) · h_window / h_block.
   The window's score is divided by √λ before the tail is read: p_calibrated = 1 - Φ(score / √λ). A
   bootstrap over the time blocks gives a 90% interval, stored with it.
4. A segment's λ is at least the whole traffic's (`all`) carried to the segment's effective size
   (`with_segment_lambda`): its own blocks are a slice of the traffic, too small for the gate to see the mix
   that moves the whole. The pipeline derives it per window from the two stored calibrations.
5. A reference with fewer than `n_blocks * min_block` (240) rows cannot be calibrated: the documented
   conservative fallback applies, the pre-calibration rule `p <= alpha AND effect >= 0.05`, and the
   calibration says so (`source: "fallback"`).

A reference can only show variation on the scale of its blocks: to calibrate windows against a daily
cycle the reference must span the cycle (a pinned day, not the first 1,000 events). Everything is a
function of the reference rows and the seed; the pipeline stores the calibration with the reference
(table `drift_calibrations`) and only recomputes it when the reference's rows change.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np
from scipy.stats import mannwhitneyu
from threadpoolctl import threadpool_limits

from monitor.drift.classifier import DEFAULT_CLASSIFIER_MIN_EFFECT, classifier_test
from monitor.drift.knn import knn_test
from monitor.drift.knn_strat import knn_strat_test
from monitor.drift.mmd import DEFAULT_MMD_MIN_EFFECT, median_bandwidth, mmd_test
from monitor.drift.novelty import novelty_test
from monitor.drift.null import deflated_p, inflation, normal_score, required_score, tail_p
from monitor.drift.result import DriftResult

CALIBRATED_METHODS = ("mmd", "knn", "classifier", "novelty", "knn_strat")
GATED_METHODS = ("mmd", "knn", "novelty", "knn_strat")
"""Methods whose own time blocks are tested for non-stationarity (when they are configured); the classifier
shares kNN's verdict."""
FALLBACK_FLOORS = {"mmd": DEFAULT_MMD_MIN_EFFECT, "knn": 0.05, "classifier": DEFAULT_CLASSIFIER_MIN_EFFECT,
                   "novelty": 0.05, "knn_strat": 0.05}
"""Conservative floors for references too small to calibrate: the pre-calibration defaults (docs/drift.md)."""
MIN_BLOCK = 30
CALIBRATION_PERMUTATIONS = 200
"""Permutations per block-pair test: enough for the null's mean, sd and skewness (the score needs no tail)."""

Source = Literal["reference_blocks", "fallback", "onset_history", "reference_lambda"]
"""`onset_history` and `reference_lambda` are the onset row's (monitor/drift/onset.py)."""


@dataclass(frozen=True)
class Calibration:
    """How one detector's verdict is corrected for one reference, and how that was obtained."""

    method: str
    lam: float
    """Inflation the window's chi-square is divided by (>= 1; 1 = stationary or fallback)."""
    lam_blocks: float | None
    """λ measured on the time blocks, before carrying it to the window size."""
    interval: tuple[float, float]
    source: Source
    floor: float
    """Effect-size floor: 0 when calibrated, the fixed conservative floor in the fallback."""
    alpha: float
    score_threshold: float
    """The normal score a window needs: √λ · Φ⁻¹(1 - alpha) (before the false-page budget)."""
    n_reference: int
    n_blocks: int
    block_size: int
    window_size: int
    nonstationarity_p: float | None
    reason: str
    lam_from: Literal["segment", "all"] | None = None
    """A segment row's λ: its own (`segment`) or the whole traffic's carried to it (`all`); None for `all` itself
    and for calibrations judged alone (`with_segment_lambda`)."""
    lam_segment: float | None = None
    """The segment's own λ (from its own time blocks), before the whole traffic's was considered."""
    lam_all: float | None = None
    """`all`'s λ for the same field and method, at `all`'s window size."""
    lam_all_carried: float | None = None
    """`all`'s λ carried to the segment's effective size (`carried_lambda`)."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["interval"] = [float(self.interval[0]), float(self.interval[1])]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        fields = dict(data)
        fields["interval"] = (float(fields["interval"][0]), float(fields["interval"][1]))
        # Rows stored before the segment fields existed (and every stored row: the segment λ is derived at window
        # time, never stored) take their defaults.
        return cls(**{k: fields[k] for k in cls.__dataclass_fields__ if k in fields})


def result_score(result: DriftResult) -> float:
    """The window's evidence as a normal score: from its standardised statistic against the permutation
    null (mmd, knn; Pearson III tail with the null's skewness) or from its analytic p-value (classifier)."""
    z = result.details.get("z")
    if z is not None and math.isfinite(float(z)):
        return normal_score(tail_p(float(z), float(result.details.get("null_skew") or 0.0)))
    return normal_score(result.p_value if result.p_value is not None else 1.0)


def _block_score(method: str, rest: np.ndarray, block: np.ndarray, seed: int, bandwidth: float | None) -> float:
    if method == "mmd":
        res = mmd_test(rest, block, seed=seed, n_permutations=CALIBRATION_PERMUTATIONS, min_effect=0.0,
                       bandwidth=bandwidth)
    elif method == "knn":
        res = knn_test(rest, block, seed=seed, n_permutations=CALIBRATION_PERMUTATIONS)
    elif method == "novelty":
        res = novelty_test(rest, block, seed=seed)
    elif method == "knn_strat":
        res = knn_strat_test(rest, block, seed=seed, n_permutations=CALIBRATION_PERMUTATIONS)
    else:
        res = classifier_test(rest, block, seed=seed, min_effect=0.0)
    return result_score(res)


def _block_scores(method: str, ref: np.ndarray, blocks: list[np.ndarray], rest_size: int, seed: int,
                  bandwidth: float | None = None) -> np.ndarray:
    """Score of each block against `rest_size` rows drawn (seeded) from the rest of the reference."""
    rng = np.random.default_rng(seed)
    out = np.empty(len(blocks))
    for i, block in enumerate(blocks):
        outside = np.ones(ref.shape[0], dtype=bool)
        outside[block] = False
        rest = np.sort(rng.choice(np.flatnonzero(outside), rest_size, replace=False))
        out[i] = _block_score(method, ref[rest], ref[block], seed + i, bandwidth)
    return out


def effective_size(n_a: int, n_b: int) -> float:
    """n_a·n_b / (n_a + n_b): the sample size a two-sample comparison's chi-square grows with."""
    return n_a * n_b / (n_a + n_b)


def carried_lambda(lam_blocks: float, h_blocks: float, h_window: float) -> float:
    """λ of the block tests carried to the window test: the chi-square excess of a fixed difference grows
    linearly with the comparison's effective size (score ~ √h · δ)."""
    return 1.0 + max(lam_blocks - 1.0, 0.0) * h_window / h_blocks


def segment_lambda(own: float, whole: float, h_segment: float, h_whole: float) -> float:
    """A segment's λ when the whole traffic's calibration is known: the larger of its own and the whole
    traffic's λ carried to the segment's effective size (`carried_lambda`).

    A segment's reference is a fraction of the traffic, so its time blocks are small and noisy and its
    stationarity gate rarely fires, while the variation that moves the whole traffic's mix (hour, weekday)
    moves the segment's too. The larger of the two, not the carried one alone: a segment can move more than
    the whole (its own mix, its own hours)."""
    return max(own, carried_lambda(whole, h_whole, h_segment))


def with_segment_lambda(own: Calibration, whole: Calibration) -> Calibration:
    """A segment's calibration with `segment_lambda` applied, given `all`'s calibration of the same field and
    method (the pipeline derives it per window from the two stored calibrations, so a recompute is identical).

    Each side's effective size is the one its own λ was carried to: window_size rows against n_reference. A
    fallback on either side is left alone: a segment too small to calibrate keeps the conservative fixed
    floor, and a whole traffic too small to calibrate has no λ to carry."""
    if own.method != whole.method:
        raise ValueError(f"segment calibration of {own.method!r} combined with `all`'s of {whole.method!r}")
    if own.source == "fallback" or whole.source == "fallback":
        return own
    h_segment = effective_size(own.window_size, own.n_reference)
    h_whole = effective_size(whole.window_size, whole.n_reference)
    carried = carried_lambda(whole.lam, h_whole, h_segment)
    lam = segment_lambda(own.lam, whole.lam, h_segment, h_whole)
    from_all = carried > own.lam
    interval = own.interval
    if from_all:  # the larger of the two at each end: the interval of max(own, carried)
        interval = (max(own.interval[0], carried_lambda(whole.interval[0], h_whole, h_segment)),
                    max(own.interval[1], carried_lambda(whole.interval[1], h_whole, h_segment)))
    reason = own.reason
    if from_all:
        reason = (f"`all`'s λ {whole.lam:.2f} carried to this segment's size ({own.window_size} window rows against "
                  f"{own.n_reference}, x{h_segment / h_whole:.2f} in effective size) is {carried:.2f}, larger than the "
                  f"segment's own {own.lam:.2f}, so it applies. The segment's own: {own.reason}")
    return replace(own, lam=lam, interval=interval, score_threshold=required_score(own.alpha, lam), reason=reason,
                   lam_from="all" if from_all else "segment", lam_segment=own.lam, lam_all=whole.lam,
                   lam_all_carried=carried)


def apply_calibration(result: DriftResult, cal: Calibration, alpha: float | None = None) -> DriftResult:
    """The detector's result (run with min_effect=0) judged by the calibrated rule.

    Calibrated: drift when p_calibrated = 1 - Φ(score / √λ) <= alpha. Fallback: the exact p-value and the
    fixed effect floor (`p <= alpha AND effect >= 0.05`). The raw `p_value` is left as it is; the
    calibrated one goes into `details["p_calibrated"]` (the false-page budget adjusts that one).
    """
    if result.method != cal.method:
        raise ValueError(f"calibration of {cal.method!r} applied to a {result.method!r} result")
    alpha = result.threshold if alpha is None else alpha
    effect = result.effect_size if result.effect_size is not None else 0.0
    score = result_score(result)
    if cal.source == "fallback":
        p_cal = result.p_value if result.p_value is not None else 1.0
        is_drift = p_cal <= alpha and effect >= cal.floor
    else:
        p_cal = deflated_p(score, cal.lam)
        is_drift = p_cal <= alpha
    details = {**result.details, "score": score, "p_calibrated": p_cal, "lambda": cal.lam,
               "min_effect": cal.floor, "calibration": cal.to_dict()}
    return replace(result, is_drift=bool(is_drift), details=details)


def run_bounds(total: int, runs: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Start row and length of each of `runs` runs that `total` sample rows are cut into (equal lengths, the first
    `total % runs` one longer): how `monitor.pipeline.sampling.run_sample` cuts a reference, and how the
    calibration finds its runs again. One run of everything when `runs` is None."""
    if runs is None or runs <= 1:
        return np.array([0]), np.array([total])
    lengths = np.full(runs, total // runs)
    lengths[: total % runs] += 1
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths


def calibrate(reference: np.ndarray, *, method: str, seed: int = 0, **params: Any) -> Calibration:
    """The calibration of `method` on this reference (rows in arrival order); see the module docstring."""
    return calibrate_methods(reference, (method,), seed=seed, **params)[method]


def calibrate_methods(
    reference: np.ndarray, methods: tuple[str, ...] | list[str], *, seed: int = 0, **params: Any
) -> dict[str, Calibration]:
    """Calibrations of several methods on one reference, sharing the stationarity gate.

    `window_size` (the window's row count) sets the block size and the size λ is carried to. One BLAS
    thread: block tests are many small products, where thread hand-offs on 2 busy cores cost more than the
    maths.
    """
    unknown = [m for m in methods if m not in CALIBRATED_METHODS]
    if unknown:
        raise ValueError(f"no calibration for drift methods {unknown}; calibrated: {CALIBRATED_METHODS}")
    with threadpool_limits(limits=1, user_api="blas"):
        return _calibrate(reference, tuple(methods), seed=seed, **params)


def _calibrate(
    reference: np.ndarray,
    methods: tuple[str, ...],
    *,
    seed: int = 0,
    window_size: int | None = None,
    alpha: float = 0.01,
    n_blocks: int = 8,
    min_block: int = MIN_BLOCK,
    gate: float = 0.01,
    n_bootstrap: int = 300,
    runs: int | None = None,
) -> dict[str, Calibration]:
    if n_blocks < 3:
        raise ValueError(f"n_blocks must be at least 3, got {n_blocks}")
    if not 0.0 < gate < 1.0:
        raise ValueError(f"gate must be in (0, 1), got {gate}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if window_size is not None and window_size < 1:
        raise ValueError(f"window_size must be positive, got {window_size}")
    ref = np.asarray(reference)
    if ref.ndim != 2 or ref.shape[1] == 0 or not np.isfinite(ref).all():
        raise ValueError("reference must be a finite 2-D array (items x dimensions)")
    if runs is not None and not 1 <= runs <= ref.shape[0]:
        raise ValueError(f"runs must be between 1 and the reference's rows, got {runs}")
    total = int(ref.shape[0])
    window = int(window_size or total)
    run_starts, run_lengths = run_bounds(total, runs)
    size = min(total // n_blocks, window, int(run_lengths.min()))
    threshold1 = required_score(alpha, 1.0)
    if size < min_block:
        return {m: Calibration(m, 1.0, None, (1.0, 1.0), "fallback", FALLBACK_FLOORS[m], alpha, threshold1, total, 0, 0,
                               window, None,
                               f"reference has {total} rows; calibration needs at least {n_blocks * min_block}, so the "
                               f"conservative rule p <= alpha and effect >= {FALLBACK_FLOORS[m]} applies")
                for m in methods}
    rng = np.random.default_rng(seed)
    # Time blocks: evenly spaced, each inside one run of consecutive events when the reference is a run sample
    # (a block that straddled two runs would mix two moments and average away the variation it is there to see).
    chosen = np.unique(np.linspace(0, run_starts.size - 1, 2 * n_blocks).round().astype(int))
    if run_starts.size > 1:
        starts = run_starts[chosen] + (run_lengths[chosen] - size) // 2
    else:
        starts = np.linspace(0, total - size, 2 * n_blocks).round().astype(int)
    n_time = int(starts.size)
    pieces = run_starts.size if runs else n_blocks  # window-sized pieces the reference needs for blocks of a window
    time_blocks = [np.arange(st, st + size) for st in starts]
    noise_blocks = [np.sort(rng.choice(total, size, replace=False)) for _ in range(n_time)]
    rest_size = min(total - size, 2 * size)
    h_blocks = effective_size(size, rest_size)
    h_window = effective_size(window, total)
    out: dict[str, Calibration] = {}

    gates: dict[str, tuple[np.ndarray, float]] = {}
    for own in [m for m in GATED_METHODS if m in methods or (m == "knn" and "classifier" in methods)]:
        # The classifier (32 model fits per reference otherwise) is represented by kNN's blocks.
        sigma = (median_bandwidth(ref, max_points=1000, rng=rng) or None) if own == "mmd" else None
        scores = _block_scores(own, ref, time_blocks, rest_size, seed, sigma)
        noise = _block_scores(own, ref, noise_blocks, rest_size, seed + 10_000, sigma)
        # Signed scores, one-sided: non-stationarity pushes the time blocks' evidence up; squaring would let
        # random blocks that fall below their null (negative scores) pass for inflation and mask it.
        gates[own] = (scores, float(mannwhitneyu(scores, noise, alternative="greater").pvalue))
    # Whether the traffic moves is one question about the traffic, not about a statistic: every gated method
    # is a test of it, combined by Bonferroni (level `gate` on stationary traffic), and the verdict is shared.
    p_traffic = min(1.0, len(gates) * min(p for _, p in gates.values()))

    for method in methods:
        scores = gates[method][0] if method in gates else np.empty(0)
        p_ns = p_traffic
        if p_ns > gate:
            out[method] = Calibration(
                method, 1.0, None, (1.0, 1.0), "reference_blocks", 0.0, alpha, threshold1, total, n_time, size,
                window, p_ns, f"no variation between time blocks beyond sampling noise (p={p_ns:.3f} > {gate}): "
                "λ = 1, the window's own null decides")
            continue
        if scores.size == 0:  # the classifier's own blocks, only once the traffic is known to move
            scores = _block_scores(method, ref, time_blocks, rest_size, seed)
        lam_blocks = inflation(scores)
        lam = carried_lambda(lam_blocks, h_blocks, h_window)
        boots = [carried_lambda(inflation(scores[rng.integers(0, n_time, n_time)]), h_blocks, h_window)
                 for _ in range(n_bootstrap)]
        interval = (float(np.quantile(boots, 0.05)), float(np.quantile(boots, 0.95)))
        out[method] = Calibration(
            method, lam, lam_blocks, interval, "reference_blocks", 0.0, alpha, required_score(alpha, lam), total,
            n_time, size, window, p_ns,
            f"time blocks differ beyond sampling noise (p={p_ns:.3f}): λ = {lam_blocks:.2f} for blocks of {size} "
            f"against {rest_size} other reference rows, {lam:.2f} carried to {window} window rows against {total}"
            + (f"; an extrapolation (x{h_window / h_blocks:.1f} in effective size) that is unreliable for mmd: a "
               f"reference of at least {pieces} windows ({pieces * window} rows) measures it at the window's size"
               if size < window else ""))
    return out
