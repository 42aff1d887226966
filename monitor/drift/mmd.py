"""Kernel two-sample test (MMD) with an RBF kernel and a permutation p-value.

Two paths compute the same unbiased statistic MMD²_u (Gretton et al., 2012):

* **exact** (both sides ≤ `exact_max_per_side`, default 2000): the full NxN kernel matrix. At these
  sizes it costs well under a second and keeps all the power of the real kernel.
* **random Fourier features** (larger windows): k(x, y) ≈ φ(x)·φ(y) with φ = [cos Wx, sin Wx]/√D,
  W ~ N(0, sigma⁻²I) (Rahimi & Recht, 2007). Then MMD² is ‖mean φ(X) - mean φ(Y)‖² up to a diagonal
  correction, and every permutation is one row of a (permutations x N) 0/1 matrix times the
  (N x features) feature matrix: all permutations are a handful of chunked matrix products. Memory
  is the feature matrix (N x n_features float32) plus one chunk.

Validity does not depend on the approximation: conditional on W and the bandwidth (both functions
of the pooled sample only), the permutation test is exact for the kernel φ(x)·φ(y); the
approximation only costs a little power. The bandwidth is the median pairwise distance of a
bounded subsample of the *pooled* data, which is permutation-invariant, so it keeps the test exact.

Effect size: MMD / spread, where spread² = 1 - mean k(x, x') over distinct reference pairs is the
reference's own spread in kernel feature space (its mean squared distance to its kernel mean). It
is a standardised mean difference in feature space; when a fraction ε of the window is replaced by
another population Q it equals ε·MMD(P, Q)/spread(P), linear in ε and independent of N. See
docs/drift.md for the calibration of the `min_effect` floor.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator

import numpy as np

from monitor.drift import refcache
from monitor.drift._validate import DEFAULT_MIN_SAMPLES, check_alpha, check_pair, subsample
from monitor.drift.null import null_moments, z_score
from monitor.drift.registry import register
from monitor.drift.result import DriftResult

DEFAULT_MMD_MIN_EFFECT = 0.05
"""Practical floor on MMD/spread, calibrated on MiniLM embeddings of real-style queries
(docs/drift.md): same-distribution windows measure <= 0.02 at 1000 per side (<= 0.045 even at 230
per side), while replacing 10% / 20% / 50% of the window with a new topic measures ~0.04 / 0.07 /
0.17. So 0.05 ignores quiet noise at any N and fires from roughly 15% of the window on a new topic."""

SEQUENTIAL_EXCEEDANCES = 20
"""h of the sequential permutation p-value (Besag & Clifford 1991): once 20 permuted statistics reach the observed
one, no further block of permutations is drawn. Such a window's p is at least 20 / 1,000 = 0.02 and its normal
score about 2 or less (at least 20 of the first 200: p ≈ 0.1, score ≈ 1.3), far from a flag at alpha 0.01
whatever λ. Its null moments come from the blocks drawn (200 or more, like the calibration's block tests)."""

_CHUNK_BYTES = 64 * 1024 * 1024  # working-set budget for one block of permutations or features
_PERMS_PER_CHUNK = 200  # measured fastest on 2 cores at 10k per side
# The 0/1 permutation block may be larger than the working-set budget: every block re-reads the
# whole feature matrix (800 MB at 100k per side), so few, tall blocks save memory bandwidth.
_PERM_BLOCK_BYTES = 192 * 1024 * 1024
_GATHER_RATIO = 8
"""Exact path: when the smaller side has at most N / 8 rows, permutations read its s² kernel entries (gathered)
instead of multiplying the whole N x N kernel (measured ~2x faster at the break-even on 2 cores, far more below)."""
_GATHER_ELEMENTS = 4 * 1024 * 1024  # kernel entries gathered at a time (16 MB of float32)


def median_bandwidth(pooled: np.ndarray, *, max_points: int, rng: np.random.Generator) -> float:
    """Median of the non-zero pairwise Euclidean distances in a bounded random subsample.

    Zero distances (duplicates) are ignored so that repeated items cannot collapse the bandwidth.
    Returns 0.0 only when every sampled point is identical.
    """
    sample = subsample(pooled, max_points, rng).astype(np.float64)
    # Squared distances from one Gram product (BLAS; scipy's pdist loops in C, ~10x slower at 1,000 x 384).
    # Cancellation leaves rounding-sized values where pdist would give exact zeros, so duplicates are
    # recognised by a tolerance relative to the squared norms.
    sq = np.einsum("ij,ij->i", sample, sample)
    upper = np.triu_indices(sample.shape[0], k=1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * (sample @ sample.T))[upper]
    scale = (sq[:, None] + sq[None, :])[upper]
    d2 = d2[d2 > 1e-12 * np.maximum(scale, 1e-300)]
    return float(np.median(np.sqrt(d2))) if d2.size else 0.0


def _permutation_chunks(
    m: int, n: int, n_permutations: int, rng: np.random.Generator, row_bytes: int
) -> Iterator[np.ndarray]:
    """Yield (chunk x (m+n)) float32 0/1 matrices; each row marks a uniformly random size-m set.

    The set is the m smallest of N uniform float64 keys (found with a partition, ~5x faster than
    shuffling each row). A tie at the cut would change the set size; it has probability ~N/2⁵³,
    and any such row is redrawn by a plain permutation anyway.
    """
    total = m + n
    per_chunk = max(1, min(n_permutations, _PERMS_PER_CHUNK, _PERM_BLOCK_BYTES // max(1, row_bytes)))
    # Keys (float64) and their partitioned copy are made a few rows at a time within the budget.
    key_rows = max(1, _CHUNK_BYTES // (16 * total))
    done = 0
    while done < n_permutations:
        size = min(per_chunk, n_permutations - done)
        chunk = np.empty((size, total), dtype=np.float32)
        for start in range(0, size, key_rows):
            keys = rng.random((min(key_rows, size - start), total))
            cut = np.partition(keys, m - 1, axis=1)[:, m - 1 : m]
            chunk[start : start + keys.shape[0]] = keys <= cut
        for row in np.flatnonzero(chunk.sum(axis=1) != m):
            chunk[row] = 0.0
            chunk[row, rng.permutation(total)[:m]] = 1.0
        yield chunk
        done += size


def _mmd2_from_sums(
    sxx: np.ndarray | float, syy: np.ndarray | float, sxy: np.ndarray | float, m: int, n: int
) -> np.ndarray:
    """Unbiased MMD² from kernel block sums, for a kernel with k(x, x) = 1 (RBF)."""
    return np.asarray(
        (np.asarray(sxx) - m) / (m * (m - 1))
        + (np.asarray(syy) - n) / (n * (n - 1))
        - 2.0 * np.asarray(sxy) / (m * n)
    )


def pooled_gram(ref: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """The pooled float32 Gram matrix [ref; cur]·[ref; cur]ᵀ, its reference block from the per-process cache
    (monitor/drift/refcache.py): a window of n rows against m reference rows then costs n·(m + n) products
    instead of (m + n)². Always assembled from the same three block products, so a hit equals a miss."""
    r = np.ascontiguousarray(ref, dtype=np.float32)
    c = np.ascontiguousarray(cur, dtype=np.float32)
    (g_rr,) = refcache.cached(("mmd-gram", refcache.fingerprint(r)), lambda: (r @ r.T,))
    m, n = r.shape[0], c.shape[0]
    gram = np.empty((m + n, m + n), dtype=np.float32)
    gram[:m, :m] = g_rr
    g_rc = r @ c.T
    gram[:m, m:] = g_rc
    gram[m:, :m] = g_rc.T
    gram[m:, m:] = c @ c.T
    return gram


def gram_bandwidth(gram: np.ndarray, idx: np.ndarray) -> float:
    """`median_bandwidth` of the rows `idx`, read off a float32 Gram matrix: median of the non-zero pairwise
    distances. Distances below 3e-3 of the norms' scale (float32 cancellation) count as duplicates."""
    # Each pair once (the upper triangle, read with one flat `take`): half the work of the whole matrix, and the
    # same median, because the pooled Gram matrix is exactly symmetric (`pooled_gram` mirrors its off-diagonal
    # block, and BLAS computes a block times its own transpose symmetrically), so the whole matrix holds every
    # pair's value twice plus a zero diagonal that the duplicate filter drops (tests/drift/test_mmd.py).
    total = gram.shape[0]
    upper_i, upper_j = _upper_pairs(idx.size)
    sub = np.ascontiguousarray(gram).reshape(-1).take((idx * total)[upper_i] + idx[upper_j]).astype(np.float64)
    sq = np.diagonal(gram)[idx].astype(np.float64)
    scale = sq[upper_i] + sq[upper_j]
    d2 = scale - 2.0 * sub
    d2 = d2[d2 > 1e-5 * np.maximum(scale, 1e-300)]
    return _median_sqrt(d2)


def _median_sqrt(d2: np.ndarray) -> float:
    """`np.median(np.sqrt(d2))` (0.0 when empty) from one partition of d2 and two square roots: the square root is
    monotone, so the middle values are the square roots of d2's middle values, averaged as np.median does."""
    size = d2.size
    if size == 0:
        return 0.0
    half = size // 2
    part = np.partition(d2, half)
    upper = float(np.sqrt(part[half]))
    if size % 2:
        return upper
    return float((np.sqrt(part[:half].max()) + upper) / 2.0)


@functools.lru_cache(maxsize=4)
def _upper_pairs(size: int) -> tuple[np.ndarray, np.ndarray]:
    """`np.triu_indices(size, 1)` (kept: every window's bandwidth sample has the same size)."""
    i, j = np.triu_indices(size, k=1)
    i.setflags(write=False)
    j.setflags(write=False)
    return i, j


def _exact_statistics(
    gram: np.ndarray, m: int, gamma: float, n_permutations: int, rng: np.random.Generator,
    stop_at: int | None = None,
) -> tuple[float, np.ndarray, float]:
    """(observed MMD²_u, permuted MMD²_u, mean off-diagonal kernel of the reference) with the full kernel
    built from the pooled Gram matrix (`pooled_gram`). With `stop_at`, no further block of permutations is drawn
    once that many permuted statistics reach the observed one (`sequential_p_value`)."""
    total = gram.shape[0]
    n = total - m
    sq = np.diag(gram).copy()
    kernel = gram * np.float32(-2.0)
    kernel += sq[:, None]
    kernel += sq[None, :]
    np.maximum(kernel, 0.0, out=kernel)
    kernel *= -gamma
    np.exp(kernel, out=kernel)
    np.fill_diagonal(kernel, 1.0)
    row_sums = kernel.sum(axis=1, dtype=np.float64)
    grand = float(row_sums.sum())

    def stat(sel_sum_kernel_sel: np.ndarray, sel_row: np.ndarray) -> np.ndarray:
        sxx = sel_sum_kernel_sel
        sxy = sel_row - sxx
        syy = grand - 2.0 * sel_row + sxx
        return _mmd2_from_sums(sxx, syy, sxy, m, n)

    sxx_obs = float(kernel[:m, :m].sum(dtype=np.float64))
    observed = float(stat(np.array(sxx_obs), np.array(row_sums[:m].sum()))[()])
    ref_mean_k = (sxx_obs - m) / (m * (m - 1))
    perms: list[np.ndarray] = []
    small = min(m, n)
    reached = 0
    for chunk in _permutation_chunks(m, n, n_permutations, rng, row_bytes=total * 4 * 2):
        if small * _GATHER_RATIO <= total:
            perms.append(_gathered_statistics(kernel, row_sums, grand, chunk, m, n, stat))
        else:
            kernel_sel = kernel @ chunk.T  # (N x c): for each permutation, K·a
            quad = np.einsum("ij,ji->i", chunk.astype(np.float64), kernel_sel.astype(np.float64))
            perms.append(stat(quad, chunk.astype(np.float64) @ row_sums))
        reached += _exceedances(observed, perms[-1])
        if stop_at is not None and reached >= stop_at:
            break
    return observed, np.concatenate(perms), ref_mean_k


def _gathered_statistics(
    kernel: np.ndarray, row_sums: np.ndarray, grand: float, chunk: np.ndarray, m: int, n: int,
    stat: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """The permutations of `chunk` from the kernel entries among the *smaller* side's rows only.

    With s = min(m, n) rows on the small side, a permutation's block sum costs s² reads instead of the N²
    multiply-adds of K·a: with a window of 125 rows against 2,000 reference rows, 290x fewer. The large side's
    sums follow from the grand sum: sum K[R, R] = grand - 2·(row sums of S) + sum K[S, S] for S the
    complement of R. Same statistic as the dense path up to float rounding (sums in float64 here).
    """
    picks_reference = m <= n
    size = m if picks_reference else n
    mask = chunk != 0 if picks_reference else chunk == 0
    cols = np.nonzero(mask)[1].reshape(chunk.shape[0], size)
    quad = np.empty(chunk.shape[0])
    rows_per_block = max(1, _GATHER_ELEMENTS // (size * size))
    total = kernel.shape[0]
    flat_kernel = kernel.reshape(-1)
    for start in range(0, chunk.shape[0], rows_per_block):
        idx = cols[start : start + rows_per_block]
        # One flat `take` instead of two broadcast index arrays: the same entries in the same shape, so the same
        # sums, ~25% faster (numpy's multi-index gather converts both index arrays per element).
        flat = idx[:, :, None] * total + idx[:, None, :]
        quad[start : start + idx.shape[0]] = flat_kernel.take(flat).sum(axis=(1, 2), dtype=np.float64)
    side_rows = row_sums[cols].sum(axis=1)
    if picks_reference:
        return stat(quad, side_rows)
    return stat(grand - 2.0 * side_rows + quad, grand - side_rows)


def _rff_features(
    reference: np.ndarray, current: np.ndarray, sigma: float, n_features: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Centred random Fourier features of the pooled rows ((m+n) x n_features float32, built in
    bounded chunks) and the pooled mean of the uncentred features (float64)."""
    dim = reference.shape[1]
    n_freq = n_features // 2
    weights = (rng.standard_normal((dim, n_freq)) / sigma).astype(np.float32)
    total = reference.shape[0] + current.shape[0]
    feats = np.empty((total, 2 * n_freq), dtype=np.float32)
    rows = max(1, _CHUNK_BYTES // (4 * (dim + 3 * n_freq)))
    out = 0
    for source in (reference, current):
        for start in range(0, source.shape[0], rows):
            block = source[start : start + rows].astype(np.float32) @ weights
            stop = out + block.shape[0]
            np.cos(block, out=feats[out:stop, :n_freq])
            np.sin(block, out=feats[out:stop, n_freq:])
            out = stop
    feats *= np.float32(1.0 / np.sqrt(n_freq))  # so that ‖φ(x)‖ = 1 exactly, like k(x, x) = 1
    pooled_mean = feats.mean(axis=0, dtype=np.float64)
    # Centring keeps float32 sums small (O(√N) instead of O(N)), so MMD² — a small difference of
    # large sums — stays accurate at 100k rows per side.
    feats -= pooled_mean.astype(np.float32)
    return feats, pooled_mean


def _rff_statistics(
    reference: np.ndarray,
    current: np.ndarray,
    sigma: float,
    n_features: int,
    n_permutations: int,
    rng: np.random.Generator,
    stop_at: int | None = None,
) -> tuple[float, np.ndarray, float]:
    """Same outputs as `_exact_statistics` (and the same `stop_at`), with the random-feature kernel φ(x)·φ(y)."""
    m, n = reference.shape[0], current.shape[0]
    feats, mu = _rff_features(reference, current, sigma, n_features, rng)
    mu_sq = float(mu @ mu)

    def stat(centred_sums: np.ndarray) -> np.ndarray:
        # With S the centred feature sum over the 'reference' set, the set means are
        # μx = μ + S/m and μy = μ - S/n, so MMD²_b = ‖S‖²(1/m + 1/n)² and the unbiased statistic adds
        # the diagonal correction (‖μx‖² - 1)/(m - 1) + (‖μy‖² - 1)/(n - 1).
        sums = centred_sums.astype(np.float64)
        q = np.einsum("ij,ij->i", sums, sums)
        lin = sums @ mu
        biased = q * (1.0 / m + 1.0 / n) ** 2
        mx_sq = mu_sq + 2.0 * lin / m + q / m**2
        my_sq = mu_sq - 2.0 * lin / n + q / n**2
        return np.asarray(biased + (mx_sq - 1.0) / (m - 1) + (my_sq - 1.0) / (n - 1))

    obs_sums = feats[:m].sum(axis=0, dtype=np.float64)[None, :]
    observed = float(stat(obs_sums)[0])
    mean_ref = mu + obs_sums[0] / m
    ref_mean_k = (m * float(mean_ref @ mean_ref) - 1.0) / (m - 1)
    perms: list[np.ndarray] = []
    reached = 0
    for chunk in _permutation_chunks(m, n, n_permutations, rng, row_bytes=(m + n) * 4):
        perms.append(stat(chunk @ feats))
        reached += _exceedances(observed, perms[-1])
        if stop_at is not None and reached >= stop_at:
            break
    return observed, np.concatenate(perms), ref_mean_k


def _at_least(observed: float, permuted: np.ndarray) -> np.ndarray:
    """Which permuted statistics are at least the observed one. A relative tolerance counts float-rounding ties
    as ties, so identical samples give p = 1."""
    tol = 1e-6 * abs(observed) + 1e-12
    return np.asarray(permuted >= observed - tol)


def _exceedances(observed: float, permuted: np.ndarray) -> int:
    return int(np.count_nonzero(_at_least(observed, permuted)))


def permutation_p_value(observed: float, permuted: np.ndarray) -> float:
    """(1 + #{permuted ≥ observed}) / (1 + n_perm): never 0, valid at any number of permutations."""
    return float((1 + _exceedances(observed, permuted)) / (1 + permuted.size))


def sequential_exceedances(alpha: float, n_permutations: int) -> int | None:
    """h of the sequential p-value (`sequential_p_value`) for a test at `alpha` with at most `n_permutations`:
    SEQUENTIAL_EXCEEDANCES, raised so that a stopped test's p (≥ h / n_permutations) is at least 2·alpha. None
    (draw them all) when h would not be smaller than the number of permutations."""
    h = max(SEQUENTIAL_EXCEEDANCES, math.ceil(2.0 * alpha * n_permutations))
    return h if h < n_permutations else None


def sequential_p_value(observed: float, permuted: np.ndarray, h: int | None) -> float:
    """Besag & Clifford's (1991) sequential Monte Carlo p-value over permutations drawn in order.

    If the h-th permuted statistic at least as large as the observed one is the L-th drawn, p = h / L (the test
    may stop there: the rest cannot make it small); otherwise (fewer than h among all drawn) the usual
    (1 + #{permuted ≥ observed}) / (1 + n_perm). Valid like the fixed-count p-value (P(p ≤ u) ≤ u), and equal to
    it whenever p < h / n_perm, i.e. everywhere a decision at alpha ≤ h / (2·n_perm) can be made. `h` None: the
    fixed-count p-value.
    """
    hits = _at_least(observed, permuted)
    count = int(np.count_nonzero(hits))
    if h is None or count < h:
        return float((1 + count) / (1 + permuted.size))
    return float(h / (int(np.flatnonzero(hits)[h - 1]) + 1))


@register("mmd", kind="embedding")
def mmd_test(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    alpha: float = 0.01,
    seed: int | None = None,
    n_permutations: int = 1000,
    min_effect: float = DEFAULT_MMD_MIN_EFFECT,
    n_features: int = 1024,
    exact_max_per_side: int = 2000,
    bandwidth: float | None = None,
    bandwidth_sample: int = 1000,
    max_per_side: int | None = 100_000,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    sequential: bool = True,
) -> DriftResult:
    """MMD two-sample test (RBF kernel, median-heuristic bandwidth, permutation p-value).

    Drift is reported when p ≤ alpha AND effect_size = MMD/spread ≥ min_effect. Windows larger
    than `max_per_side` are subsampled (seeded) to bound memory; sides up to `exact_max_per_side`
    use the exact kernel, larger ones `n_features` random Fourier features. `sequential`: stop drawing
    permutations (in blocks of 200) once the window is clearly unremarkable (`sequential_p_value`); the same
    seed gives the same result either way, and every window that is not stopped gets exactly the fixed-count one.
    """
    check_alpha(alpha)
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be positive, got {n_permutations}")
    if n_features < 2:
        raise ValueError(f"n_features must be at least 2, got {n_features}")
    ref, cur = check_pair(reference, current, kind="embedding", min_samples=min_samples)
    rng = np.random.default_rng(seed)
    ref, cur = subsample(ref, max_per_side, rng), subsample(cur, max_per_side, rng)
    m, n = ref.shape[0], cur.shape[0]

    exact = max(m, n) <= exact_max_per_side
    gram = pooled_gram(ref, cur) if exact else None
    if bandwidth is None:
        pool_idx = rng.choice(m + n, size=min(m + n, bandwidth_sample), replace=False)
        if gram is not None:  # the same sample's distances, from the Gram matrix the kernel needs anyway
            sigma = gram_bandwidth(gram, pool_idx)
        else:
            pool_sample = np.concatenate([ref[pool_idx[pool_idx < m]], cur[pool_idx[pool_idx >= m] - m]])
            sigma = median_bandwidth(pool_sample, max_points=bandwidth_sample, rng=rng)
    elif bandwidth > 0:
        sigma = float(bandwidth)
    else:
        raise ValueError(f"bandwidth must be positive, got {bandwidth}")

    details: dict[str, object] = {
        "min_effect": min_effect,
        "n_permutations": n_permutations,
        "bandwidth": sigma,
        "kernel": "rbf exp(-d²/(2sigma²))",
    }
    if sigma == 0.0:
        # Every sampled point is identical: no kernel to build, and nothing can have changed.
        details.update(path="degenerate", reason="all sampled points are identical")
        return DriftResult("mmd", 0.0, 1.0, alpha, False, 0.0, m, n, details)

    h = sequential_exceedances(alpha, n_permutations) if sequential else None
    if gram is not None:
        observed, permuted, ref_mean_k = _exact_statistics(
            gram, m, 1.0 / (2.0 * sigma**2), n_permutations, rng, stop_at=h
        )
        details["path"] = "exact"
    else:
        observed, permuted, ref_mean_k = _rff_statistics(ref, cur, sigma, n_features, n_permutations, rng,
                                                         stop_at=h)
        details.update(path="rff", n_features=2 * (n_features // 2))

    p_value = sequential_p_value(observed, permuted, h)
    details.update(permutations_drawn=int(permuted.size), sequential_h=h)
    spread_sq = 1.0 - ref_mean_k
    if spread_sq <= 1e-12:
        # A constant reference has no spread of its own; fall back to the pooled spread so the
        # effect size stays finite (it is then the share of the pooled spread due to the shift).
        spread_sq = max(1e-12, 1.0 - float(np.mean(permuted)) - observed)
        details["spread_source"] = "pooled"
    effect = float(np.sqrt(max(observed, 0.0) / spread_sq))
    # The effect a same-distribution window reaches with probability alpha: what a calibrated floor
    # adds to (monitor/drift/thresholds.py), so natural variation and sampling noise are both covered.
    null_q = float(np.sqrt(max(float(np.quantile(permuted, 1.0 - alpha)), 0.0) / spread_sq))
    null_mean, null_sd, null_skew = null_moments(permuted)
    details.update(spread=float(np.sqrt(spread_sq)), null_mean=null_mean, null_effect_q=null_q,
                   null_sd=null_sd, null_skew=null_skew, z=z_score(observed, null_mean, null_sd))
    is_drift = bool(p_value <= alpha and effect >= min_effect)
    return DriftResult("mmd", observed, p_value, alpha, is_drift, effect, m, n, details)
