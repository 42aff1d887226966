"""Per-project effect-size floors, derived from the project's own reference traffic.

The old default verdict was `p <= alpha AND effect >= 0.05`, with 0.05 calibrated on hand-written
queries from unrelated topics. On real support-bot traffic a shift to *neighbouring* intents has a
much smaller effect (MMD/spread ~0.03-0.045 for 20% of the window on new CLINC150 intents), so the
fixed floor hid it. A floor exists for one reason: to keep the natural wobble of a project's traffic
(hour of day, weekday mix) from firing once windows are large enough for it to be "significant".
How large that wobble is depends on the project, so it is measured on the project's reference, by
running the detector itself on pieces of the reference the way it will later run on windows:

1. The reference rows, in arrival order, are cut into `n_blocks` equal time segments. From each,
   a contiguous *time block* of `b = min(segment length, window size)` rows is taken and compared
   with `b` rows drawn at random from the rest of the reference: the detector's signed effect
   (MMD²_u/spread² for MMD, which is unbiased and so centred on 0 without drift; the kNN and
   classifier effects are centred on 0 too). That is a window-sized piece of past traffic judged
   against the rest of the reference, so it carries the traffic's variation over time. The same
   on `n_shuffles` x `n_blocks` blocks of randomly chosen rows carries only sampling noise.
2. **Is there natural variation?** A one-sided Mann-Whitney test of the time blocks' kNN effects
   against the shuffled blocks' (kNN: a change in the intent mix moves local neighbourhoods long
   before it moves a kernel mean). Not significant at `gate` (default 0.05): the traffic is
   stationary at this resolution, the floor is 0, and the exact permutation p-value alone decides,
   which keeps full sensitivity on steady traffic.
3. **How much?** Otherwise the natural variation is the time blocks' mean effect above the shuffled
   blocks' mean (noise cancels), plus one sd of the time blocks' natural spread (their variance
   minus the noise variance), in effect units (square root for MMD). At decision time it is
   combined with the window's own null quantile
   (`details["null_effect_q"]`, the effect a same-distribution window reaches with probability
   alpha): a window must differ from the reference by more than the reference differs from itself
   over time *plus* sampling noise (`apply_calibration`).
4. **Interval:** a bootstrap over the time blocks (resampled with replacement) gives a 90% interval
   for the natural variation; the floor is its upper end (a floor set too low pages someone every
   day; one set too high only delays a page on a project already known to move).
5. A reference with fewer than `n_blocks * min_block` rows cannot be calibrated: the result says so
   and the documented conservative fallback (the old fixed floors) applies.

A reference can only show variation on the scale of a block: to calibrate for windows of n events
against a daily cycle, the reference must span the cycle and hold several windows' worth of events
(a pinned day, not the first 1,000 events). Everything is a function of the reference rows and the
seed, so a recomputation gives the same floor; the pipeline caches it per reference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np
from scipy.stats import mannwhitneyu
from threadpoolctl import threadpool_limits

from monitor.drift.classifier import DEFAULT_CLASSIFIER_MIN_EFFECT, classifier_test
from monitor.drift.knn import knn_test
from monitor.drift.mmd import DEFAULT_MMD_MIN_EFFECT, median_bandwidth, mmd_test
from monitor.drift.result import DriftResult

CALIBRATED_METHODS = ("mmd", "knn", "classifier")
FALLBACK_FLOORS = {"mmd": DEFAULT_MMD_MIN_EFFECT, "knn": 0.05, "classifier": DEFAULT_CLASSIFIER_MIN_EFFECT}
"""Conservative floors for references too small to calibrate: the pre-calibration defaults (docs/drift.md)."""

Source = Literal["reference_blocks", "fallback"]


@dataclass(frozen=True)
class Calibration:
    """The effect-size floor of one detector for one reference, and how it was obtained."""

    method: str
    floor: float
    interval: tuple[float, float]
    source: Source
    n_reference: int
    n_blocks: int
    block_size: int
    nonstationarity_p: float | None
    candidate: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["interval"] = [float(self.interval[0]), float(self.interval[1])]
        return out


def _signed_effect(
    method: str, reference: np.ndarray, current: np.ndarray, seed: int, bandwidth: float | None
) -> float:
    """The detector's effect of `current` against `reference`, signed (no permutations: only the size)."""
    if method == "mmd":
        res = mmd_test(reference, current, seed=seed, n_permutations=1, min_effect=0.0, bandwidth=bandwidth)
        spread = float(res.details.get("spread", 1.0)) or 1.0
        return float(res.statistic) / spread**2
    if method == "knn":
        return float(knn_test(reference, current, seed=seed, n_permutations=1).effect_size or 0.0)
    return float(classifier_test(reference, current, seed=seed, min_effect=0.0).effect_size or 0.0)


def _block_effects(
    method: str, ref: np.ndarray, blocks: list[np.ndarray], rng: np.random.Generator, seed: int,
    bandwidth: float | None = None,
) -> np.ndarray:
    """Signed effect of each block against an equal-size random sample of the rest of the reference.

    MMD gets one bandwidth for all blocks (the reference's median distance, as the window test would
    find): the same kernel everywhere, and one distance computation instead of one per block.
    """
    out = np.empty(len(blocks))
    for i, block in enumerate(blocks):
        outside = np.ones(ref.shape[0], dtype=bool)
        outside[block] = False
        rest = rng.choice(np.flatnonzero(outside), block.size, replace=False)
        out[i] = _signed_effect(method, ref[np.sort(rest)], ref[block], seed + i, bandwidth)
    return out


def _floor_candidate(method: str, time_vals: np.ndarray, noise_vals: np.ndarray) -> float:
    """Natural variation in effect units, by moments: the time blocks' mean above the shuffled blocks'
    (sampling noise has the same mean in both, so it cancels), plus one standard deviation of the
    natural part of their spread (time-block variance minus noise variance): an allowance for the hours
    that differ more than average. Means, not upper quantiles: the squared MMD's noise is skewed, and
    quantiles of 8 blocks swung from 0 to the full shift between references of the same cycle."""
    mean_excess = float(np.mean(time_vals) - np.mean(noise_vals))
    spread = float(np.sqrt(max(float(np.var(time_vals, ddof=1) - np.var(noise_vals, ddof=1)), 0.0)))
    excess = max(mean_excess, 0.0) + spread
    return float(np.sqrt(excess)) if method == "mmd" else excess


def effective_floor(method: str, natural: float, null_q: float) -> float:
    """Natural variation plus the sampling noise of this window (the effect a same-distribution window
    reaches with probability alpha): MMD effects add in squares (MMD² is additive), the others linearly."""
    if natural <= 0.0:
        return 0.0
    return float(np.hypot(natural, null_q)) if method == "mmd" else natural + null_q


def apply_calibration(result: DriftResult, cal: Calibration) -> DriftResult:
    """The detector's result (run with min_effect=0) judged by the calibrated rule.

    drift = p <= alpha AND effect >= floor, where floor is 0 on stationary references (the exact
    p-value alone decides), the natural variation combined with this window's own null quantile on
    non-stationary ones, and the fixed conservative floor when the reference was too small.
    """
    if result.method != cal.method:
        raise ValueError(f"calibration of {cal.method!r} applied to a {result.method!r} result")
    null_q = float(result.details.get("null_effect_q", 0.0))
    if cal.source == "fallback":
        floor, interval = cal.floor, cal.interval
    else:
        floor = effective_floor(cal.method, cal.floor, null_q)
        interval = (effective_floor(cal.method, cal.interval[0], null_q),
                    effective_floor(cal.method, cal.interval[1], null_q))
    effect = result.effect_size if result.effect_size is not None else 0.0
    p_ok = result.p_value is not None and result.p_value <= result.threshold
    details = {**result.details, "min_effect": floor, "min_effect_interval": [interval[0], interval[1]],
               "calibration": cal.to_dict()}
    return replace(result, is_drift=bool(p_ok and effect >= floor), details=details)


def calibrate(reference: np.ndarray, *, method: str, seed: int = 0, **params: Any) -> Calibration:
    """The floor for `method` on this reference (rows in arrival order); see the module docstring."""
    return calibrate_methods(reference, (method,), seed=seed, **params)[method]


def calibrate_methods(
    reference: np.ndarray, methods: tuple[str, ...] | list[str], *, seed: int = 0, **params: Any
) -> dict[str, Calibration]:
    """Floors for several methods of one reference, sharing the stationarity gate.

    `window_size` caps the block size (blocks should look like the windows they calibrate). One BLAS
    thread: the block tests are many small products, where thread hand-offs on 2 busy cores cost more
    than the maths (measured 20 ms vs 1.3 ms for a 1000 x 1000 by 1000 x 8 product).
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
    n_blocks: int = 8,
    min_block: int = 25,
    n_shuffles: int = 3,
    gate: float = 0.05,
    n_bootstrap: int = 300,
) -> dict[str, Calibration]:
    if n_blocks < 3 or n_shuffles < 1:
        raise ValueError(f"n_blocks must be at least 3 and n_shuffles positive, got {n_blocks}, {n_shuffles}")
    if not 0.0 < gate < 1.0:
        raise ValueError(f"gate must be in (0, 1), got {gate}")
    if window_size is not None and window_size < 1:
        raise ValueError(f"window_size must be positive, got {window_size}")
    ref = np.asarray(reference)
    if ref.ndim != 2 or ref.shape[1] == 0 or not np.isfinite(ref).all():
        raise ValueError("reference must be a finite 2-D array (items x dimensions)")
    total = int(ref.shape[0])
    # Half of each segment at most, so a block's comparison sample can come from the rest.
    size = min(total // (2 * n_blocks), window_size or total)
    if size < min_block:
        return {m: Calibration(m, FALLBACK_FLOORS[m], (FALLBACK_FLOORS[m], FALLBACK_FLOORS[m]), "fallback", total,
                               0, 0, None, None,
                               f"reference has {total} rows; calibration needs at least {2 * n_blocks * min_block}, "
                               f"so the conservative fixed floor {FALLBACK_FLOORS[m]} applies") for m in methods}
    rng = np.random.default_rng(seed)
    segments = np.array_split(np.arange(total), n_blocks)
    time_blocks = [seg[(seg.size - size) // 2:][:size] for seg in segments]
    noise_blocks = [np.sort(rng.choice(total, size, replace=False)) for _ in range(n_shuffles * n_blocks)]
    knn_time = _block_effects("knn", ref, time_blocks, rng, seed)
    knn_noise = _block_effects("knn", ref, noise_blocks, rng, seed + 10_000)
    p_ns = float(mannwhitneyu(knn_time, knn_noise, alternative="greater").pvalue)
    moving = p_ns <= gate
    out: dict[str, Calibration] = {}
    for method in methods:
        if method == "knn":
            time_vals, noise_vals = knn_time, knn_noise
        elif moving:  # other detectors are only run on the blocks when there is variation to measure
            sigma = (median_bandwidth(ref, max_points=1000, rng=rng) or None) if method == "mmd" else None
            time_vals = _block_effects(method, ref, time_blocks, rng, seed, sigma)
            noise_vals = _block_effects(method, ref, noise_blocks, rng, seed + 10_000, sigma)
        else:
            out[method] = Calibration(method, 0.0, (0.0, 0.0), "reference_blocks", total, n_blocks, size, p_ns,
                                      None, _stationary(p_ns, gate))
            continue
        candidate = _floor_candidate(method, time_vals, noise_vals)
        boots = [_floor_candidate(method, time_vals[rng.integers(0, n_blocks, n_blocks)], noise_vals)
                 for _ in range(n_bootstrap)]
        interval = (float(np.quantile(boots, 0.05)), float(np.quantile(boots, 0.95)))
        if not moving:
            out[method] = Calibration(method, 0.0, interval, "reference_blocks", total, n_blocks, size, p_ns,
                                      candidate, _stationary(p_ns, gate))
            continue
        # The upper end of the interval, not the point estimate: with 8 blocks the estimate itself is noisy
        # (for MMD it came out 0 on one reference of eight with a clear daily cycle), and a floor set too low
        # pages someone every day, while one set too high only delays a page on a project known to move.
        out[method] = Calibration(
            method, interval[1], interval, "reference_blocks", total, n_blocks, size, p_ns, candidate,
            f"time blocks differ beyond sampling noise (p={p_ns:.3f}): the floor is the upper end of the 90% "
            f"interval of their mean effect above the noise plus one sd of its natural spread")
    return out


def _stationary(p_ns: float, gate: float) -> str:
    return f"no variation between time blocks beyond sampling noise (p={p_ns:.3f} > {gate}): the p-value alone decides"
