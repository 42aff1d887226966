"""Per-project effect-size floors, derived from the project's own reference traffic.

The old default verdict was `p <= alpha AND effect >= 0.05`, with 0.05 calibrated on hand-written
queries from unrelated topics. On real support-bot traffic a shift to *neighbouring* intents has a
much smaller effect (MMD/spread ~0.045 for 20% of the window on new CLINC150 intents), so the fixed
floor hid it. The floor exists for one reason: to keep the natural wobble of a project's traffic
(hour of day, weekday mix) from firing when windows are large enough for it to be "significant".
How large that wobble is depends on the project, so it is measured on the project's reference:

1. The reference rows, in arrival order (at most `max_rows`, thinned evenly in time), are cut into
   `n_blocks` contiguous blocks. For each block the detector's *signed* effect of that block
   against the rest of the reference is computed (MMD²_u/spread², which is unbiased and so
   centred on 0 without drift; kNN and classifier effects are centred on 0 too). Time-ordered
   blocks carry the traffic's variation over time; blocks of shuffled rows carry only sampling
   noise at the same block size.
2. **Is there natural variation?** A permutation test: the mean block-vs-rest MMD²_u of the
   time-ordered blocks against its distribution over `n_shuffles` shuffles of the rows. If it is
   not significant at `gate` (default 0.05), the traffic is stationary at this resolution: the floor
   is 0 and the exact permutation p-value alone decides, which is what gives full sensitivity on
   steady traffic.
3. **How much?** Otherwise the floor is the excess of the time-ordered blocks' upper quantile
   (`quantile`, default 0.9) over the shuffled blocks' one, in effect units (square root for MMD):
   the part of a block's distance to the rest that sampling noise does not explain. A window must
   differ from the reference by more than the reference differs from itself over time.
4. **Interval:** a bootstrap over the time-ordered blocks (resampled with replacement) gives a 90%
   interval for the floor candidate, stored beside it.
5. A reference with fewer than `n_blocks * min_block` rows cannot be calibrated: the result says so
   and the documented conservative fallback (the old fixed floors) applies.

Everything is a function of the reference rows and the seed, so a recomputation gives the same
floor. The MMD and kNN block statistics come from one kernel matrix / one neighbour graph of the
reference, with only the block labels changing, so a calibration costs about a second; the
classifier (5 model fits per block) is only fitted when step 2 found variation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from threadpoolctl import threadpool_limits

from monitor.drift.classifier import DEFAULT_CLASSIFIER_MIN_EFFECT, classifier_test
from monitor.drift.knn import neighbour_graph
from monitor.drift.mmd import DEFAULT_MMD_MIN_EFFECT, median_bandwidth

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


def _time_thin(reference: np.ndarray, max_rows: int) -> np.ndarray:
    """At most `max_rows` rows, evenly spaced in arrival order (so every part of the period stays)."""
    if reference.shape[0] <= max_rows:
        return reference
    return reference[np.linspace(0, reference.shape[0] - 1, max_rows).round().astype(np.int64)]


def _rbf_kernel(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = x.astype(np.float32)
    sigma = median_bandwidth(x, max_points=1000, rng=rng) or 1.0
    sq = np.einsum("ij,ij->i", x, x)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0)
    kernel = np.exp(-d2 / np.float32(2.0 * sigma**2)).astype(np.float32)
    np.fill_diagonal(kernel, 1.0)
    return kernel


def _mmd_block_effects(kernel: np.ndarray, labels: np.ndarray, n_blocks: int) -> np.ndarray:
    """Signed MMD²_u(block, rest) / spread²(rest) for every block (unbiased: centred on 0 if no drift)."""
    onehot = np.zeros((labels.size, n_blocks), dtype=kernel.dtype)
    onehot[np.arange(labels.size), labels] = 1.0
    sums = (onehot.T @ (kernel @ onehot)).astype(np.float64)  # (blocks x blocks) kernel sums
    grand = sums.sum()
    size = onehot.sum(axis=0)
    out = np.empty(n_blocks)
    for b in range(n_blocks):
        m, n = size[b], labels.size - size[b]
        sxx = sums[b, b]
        sxy = sums[b].sum() - sxx
        syy = grand - sxx - 2.0 * sxy
        mmd2 = (sxx - m) / (m * (m - 1)) + (syy - n) / (n * (n - 1)) - 2.0 * sxy / (m * n)
        spread_sq = max(1e-12, 1.0 - (syy - n) / (n * (n - 1)))
        out[b] = mmd2 / spread_sq
    return out


def _knn_block_effects(graph: np.ndarray, labels: np.ndarray, n_blocks: int) -> np.ndarray:
    """kNN effect of each block against the rest, over the reference's own neighbour graph."""
    total, k = graph.shape
    out = np.empty(n_blocks)
    for b in range(n_blocks):
        side = labels == b
        m = int(side.sum())
        n = total - m
        same = np.count_nonzero(side[:, None] == side[graph])
        chance = (m * (m - 1) + n * (n - 1)) / (total * (total - 1))
        out[b] = (same / (total * k) - chance) / (1.0 - chance)
    return out


def _classifier_block_effects(ref: np.ndarray, labels: np.ndarray, n_blocks: int, seed: int) -> np.ndarray:
    return np.array([
        classifier_test(ref[labels != b], ref[labels == b], seed=seed + b, min_effect=0.0).effect_size or 0.0
        for b in range(n_blocks)
    ])


def _floor_candidate(method: str, time_vals: np.ndarray, noise_q: float, quantile: float) -> float:
    excess = float(np.quantile(time_vals, quantile)) - noise_q
    return float(np.sqrt(max(excess, 0.0))) if method == "mmd" else max(excess, 0.0)


def calibrate(
    reference: np.ndarray, *, method: str, seed: int = 0, **params: Any
) -> Calibration:
    """The floor for `method` on this reference (rows in arrival order); see the module docstring.

    One BLAS thread: the block statistics are many thin (N x N)·(N x blocks) products, where thread
    hand-offs cost more than the maths (measured 20 ms vs 1.3 ms each at N = 1000 on 2 busy cores).
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _calibrate(reference, method=method, seed=seed, **params)


def _calibrate(
    reference: np.ndarray,
    *,
    method: str,
    seed: int = 0,
    n_blocks: int = 8,
    min_block: int = 25,
    max_rows: int = 1500,
    n_shuffles: int = 99,
    gate: float = 0.05,
    quantile: float = 0.9,
    n_bootstrap: int = 300,
    knn_k: int = 10,
) -> Calibration:
    if method not in CALIBRATED_METHODS:
        raise ValueError(f"no calibration for drift method {method!r}; calibrated: {CALIBRATED_METHODS}")
    if n_blocks < 3:
        raise ValueError(f"n_blocks must be at least 3, got {n_blocks}")
    if not 0.0 < gate < 1.0 or not 0.5 <= quantile < 1.0:
        raise ValueError("gate must be in (0, 1) and quantile in [0.5, 1)")
    ref = np.asarray(reference)
    if ref.ndim != 2 or not np.isfinite(ref).all():
        raise ValueError("reference must be a finite 2-D array (items x dimensions)")
    n_total = int(ref.shape[0])
    ref = _time_thin(ref, max_rows)
    total = ref.shape[0]
    if total < n_blocks * min_block:
        fallback = FALLBACK_FLOORS[method]
        return Calibration(method, fallback, (fallback, fallback), "fallback", n_total, 0, 0, None, None,
                           f"reference has {n_total} rows; calibration needs at least {n_blocks * min_block}, "
                           f"so the conservative fixed floor {fallback} applies")
    rng = np.random.default_rng(seed)
    time_labels = np.arange(total) * n_blocks // total
    kernel = _rbf_kernel(ref, rng)
    shuffles = [rng.permutation(time_labels) for _ in range(n_shuffles)]
    mmd_time = _mmd_block_effects(kernel, time_labels, n_blocks)
    mmd_noise = [_mmd_block_effects(kernel, lab, n_blocks) for lab in shuffles]
    null_means = np.array([v.mean() for v in mmd_noise])
    p_ns = float((1 + np.count_nonzero(null_means >= mmd_time.mean())) / (1 + n_shuffles))

    if method == "mmd":
        time_vals, noise_vals = mmd_time, np.concatenate(mmd_noise)
    elif method == "knn":
        graph = neighbour_graph(ref, min(knn_k, total - 1))
        time_vals = _knn_block_effects(graph, time_labels, n_blocks)
        noise_vals = np.concatenate([_knn_block_effects(graph, lab, n_blocks) for lab in shuffles])
    elif p_ns <= gate:  # classifier: only fitted when there is variation to measure
        time_vals = _classifier_block_effects(ref, time_labels, n_blocks, seed)
        noise_vals = np.concatenate([_classifier_block_effects(ref, lab, n_blocks, seed) for lab in shuffles[:2]])
    else:
        return Calibration(method, 0.0, (0.0, 0.0), "reference_blocks", n_total, n_blocks, total // n_blocks, p_ns,
                           None, f"no variation between time-ordered blocks beyond sampling noise (p={p_ns:.3f} > "
                           f"{gate}): the p-value alone decides")
    noise_q = float(np.quantile(noise_vals, quantile))
    candidate = _floor_candidate(method, time_vals, noise_q, quantile)
    boots = [
        _floor_candidate(method, time_vals[rng.integers(0, n_blocks, n_blocks)], noise_q, quantile)
        for _ in range(n_bootstrap)
    ]
    interval = (float(np.quantile(boots, 0.05)), float(np.quantile(boots, 0.95)))
    if p_ns <= gate:
        floor, reason = candidate, (f"time-ordered blocks differ beyond sampling noise (p={p_ns:.3f}): the floor "
                                    f"is their excess effect at quantile {quantile}")
    else:
        floor, reason = 0.0, (f"no variation between time-ordered blocks beyond sampling noise (p={p_ns:.3f} > "
                              f"{gate}): the p-value alone decides")
    return Calibration(method, floor, interval, "reference_blocks", n_total, n_blocks, total // n_blocks, p_ns,
                       candidate, reason)
