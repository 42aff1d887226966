"""Novelty test: how many current items lie outside the reference's support (conformal, exact null).

Why this detector (issue #16, docs/drift.md): real quiet traffic reweights its topics with the hour, and
MMD and the kNN test both see a reweighting (an existing intent at 1.5x its share) about as strongly as 10%
of the window on new intents, so no deflation of their scores can separate the two. This statistic is blind
to reweighting *within* the reference's support by construction: an item's evidence is only how far it is
from the reference, never how many other current items resemble it.

Statistic (a conformal novelty count, per cell):
- d(x) = 1 - cosine similarity of x to its k-th most similar reference row (k = 1);
- the reference's own leave-one-out distances d_i (row i against the other m - 1 rows) are the null scores;
- cells: the cosine Voronoi regions of m // cell_size reference rows drawn uniformly (seeded). In a cell with
  m_c reference rows the threshold t_c is the l_c-th smallest of their scores, l_c = ceil((1 - level)(m_c + 1))
  (clamped to [1, m_c]); a current row is novel when d(x) exceeds its cell's threshold;
- the statistic is the count C of novel current rows.
Why cells: intents differ in spread, and with one global threshold the sparse intents hold most far-out items,
so a window tilted towards them counts more (a reweighting seen as novelty) and a new intent next to a tight
one goes unseen. Per-cell thresholds make the expected share of novel rows the same in every region.

Null: under "no drift" a current row is exchangeable with the reference rows, so given the reference a row in
cell c is novel with probability 1 - F_c(t_c) ~ Beta(m_c - l_c + 1, l_c) (the coverage of a conformal
quantile). Current rows are independent given the reference, so a cell's count is BetaBinomial(n_c,
m_c - l_c + 1, l_c) and C is the sum over cells (exact convolution): the shared random thresholds widen the
plain binomial by ~ (1 + n/m) in variance, which matters at n ≈ m. The leave-one-out scores see m - 1 rows and
a current row sees m, which makes current distances slightly smaller: conservative. No permutations, so the
call costs one n x m similarity product (and the reference's m x m leave-one-out product once per reference,
kept in monitor/drift/refcache.py).

Score for the calibration (monitor/drift/null.py, thresholds.py): the mid-p tail of C, mapped to the normal
quantile, is stored as `details["z"]` with skew 0, so `result_score` reads it as is; it is N(0, 1) on
quiet windows up to the count's discreteness. `p_value` is the exact tail P(C >= c).

Effect size: the excess share of novel rows, (C - E[C]) / n: roughly the share of the window that is new
times the share of new items farther out than their cell's 1 - level quantile.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import betaln, gammaln
from scipy.stats import betabinom

from monitor.drift import refcache
from monitor.drift._validate import DEFAULT_MIN_SAMPLES, check_alpha, check_pair, subsample
from monitor.drift.null import normal_score
from monitor.drift.registry import register
from monitor.drift.result import DriftResult

_ROWS_PER_BLOCK = 512  # similarity rows at a time: 512 x m float32 (8 MB at m = 4,000)

DEFAULT_K = 1
"""Neighbour whose distance is the novelty score (1 = nearest); chosen on CLINC150 (docs/drift.md)."""
DEFAULT_LEVEL = 0.05
"""Share of the reference's own leave-one-out distances beyond the threshold; chosen on CLINC150."""
DEFAULT_CELL_SIZE: int | None = 25
"""Reference rows per cell (cells = m // 25 Voronoi regions of random reference rows); None = one global
threshold. Chosen on CLINC150 (docs/drift.md)."""


def _normalised(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.where(norms > 0, norms, np.float32(1.0)), dtype=np.float32)


def _kth_similarity(rows: np.ndarray, pool: np.ndarray, k: int, leave_out: bool) -> np.ndarray:
    """Each row's k-th largest cosine similarity to `pool`; with `leave_out`, rows are `pool` itself and each
    row's own entry is excluded (the leave-one-out score). Blocked so memory stays _ROWS_PER_BLOCK x m."""
    out = np.empty(rows.shape[0], dtype=np.float64)
    m = pool.shape[0]
    for start in range(0, rows.shape[0], _ROWS_PER_BLOCK):
        stop = min(rows.shape[0], start + _ROWS_PER_BLOCK)
        sim = rows[start:stop] @ pool.T
        if leave_out:
            sim[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        if k == 1:
            out[start:stop] = sim.max(axis=1)
        else:
            out[start:stop] = np.partition(sim, m - k, axis=1)[:, m - k]
    return out


def cell_anchors(m: int, cell_size: int, seed: int | None) -> np.ndarray:
    """Indices of max(1, m // cell_size) reference rows drawn uniformly (seeded); the cells are their cosine
    Voronoi regions. Uniform draws keep reference rows exchangeable with current ones (a spread-seeking choice
    such as k-means++ prefers outlying rows, whose large distances would bias their cells' thresholds)."""
    return np.sort(np.random.default_rng(seed).choice(m, max(1, m // cell_size), replace=False))


def reference_part(reference: np.ndarray, k: int, cell_size: int | None, seed: int | None) -> tuple[np.ndarray, ...]:
    """What a window's test needs from the reference alone, cached per reference, k, cell size and seed (a hit
    returns exactly what a miss computes): the normalised rows, the anchors' rows, each row's cell and the
    rows' leave-one-out distances (1 - k-th similarity to the other m - 1 rows)."""
    xr = _normalised(reference)

    def compute() -> tuple[np.ndarray, ...]:
        m = xr.shape[0]
        anchors = (xr[cell_anchors(m, cell_size, seed)] if cell_size is not None
                   else np.zeros((1, xr.shape[1]), dtype=np.float32))
        cells = np.asarray((xr @ anchors.T).argmax(axis=1), dtype=np.int64)
        loo = 1.0 - _kth_similarity(xr, xr, k, leave_out=True)
        return xr, np.ascontiguousarray(anchors), cells, loo

    key = ("novelty-ref", k, cell_size, seed if cell_size is not None else None, refcache.fingerprint(xr))
    return refcache.cached(key, compute)


def conformal_rank(m: int, level: float) -> int:
    """l = ceil((1 - level)(m + 1)), clamped to [1, m]: the threshold is the l-th smallest of m null scores."""
    return min(m, max(1, math.ceil((1.0 - level) * (m + 1))))


def betabinomial_pmf(n: int, a: float, b: float) -> np.ndarray:
    """pmf of BetaBinomial(n, a, b) on 0..n, vectorised in log space (scipy's per-call overhead is ~0.3 ms,
    and a window has up to a few hundred cells)."""
    j = np.arange(n + 1, dtype=np.float64)
    log_choose = gammaln(n + 1.0) - gammaln(j + 1.0) - gammaln(n - j + 1.0)
    return np.asarray(np.exp(log_choose + betaln(j + a, n - j + b) - betaln(a, b)))


def sum_of_betabinomials(parts: list[tuple[int, int, int]]) -> np.ndarray:
    """pmf of a sum of independent BetaBinomial(n_c, a_c, b_c) counts (exact convolution)."""
    pmf = np.ones(1)
    for n, a, b in parts:
        pmf = np.convolve(pmf, betabinomial_pmf(n, a, b))
    return pmf


def novelty_null(m: int, n: int, level: float) -> tuple[int, betabinom]:
    """(l, null distribution of the count) of one cell: m reference scores, n current rows, a nominal level."""
    rank = conformal_rank(m, level)
    return rank, betabinom(n, m - rank + 1, rank)


@register("novelty", kind="embedding")
def novelty_test(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    alpha: float = 0.01,
    seed: int | None = None,
    k: int = DEFAULT_K,
    level: float = DEFAULT_LEVEL,
    min_effect: float = 0.0,
    max_per_side: int = 10_000,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    cell_size: int | None = DEFAULT_CELL_SIZE,
) -> DriftResult:
    """Conformal novelty count (cosine, k-th neighbour, per-cell thresholds); drift when p <= alpha AND
    effect >= min_effect.

    Sides larger than `max_per_side` are subsampled (seeded; the reference's leave-one-out product is
    quadratic). `seed` also draws the cells' anchor rows; the null itself is analytic.
    """
    check_alpha(alpha)
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if max_per_side < 2:
        raise ValueError(f"max_per_side must be at least 2, got {max_per_side}")
    ref, cur = check_pair(reference, current, kind="embedding", min_samples=min_samples)
    rng = np.random.default_rng(seed)
    ref, cur = subsample(ref, max_per_side, rng), subsample(cur, max_per_side, rng)
    m, n = ref.shape[0], cur.shape[0]
    if k > m - 1:
        raise ValueError(f"k={k} needs at least {k + 1} reference rows, got {m}")
    xr, anchors, ref_cell, loo = reference_part(ref, k, cell_size, seed)
    xc = _normalised(cur)
    distances = 1.0 - _kth_similarity(xc, xr, k, leave_out=False)
    cur_cell = np.asarray((xc @ anchors.T).argmax(axis=1), dtype=np.int64)
    # Per cell: its reference rows' leave-one-out distances are the null scores of the current rows that fall
    # in it; counts of different cells are independent given the reference, so the null is a sum of
    # beta-binomials. Sorting by (cell, distance) gives every cell's sorted scores in one pass.
    order = np.lexsort((loo, ref_cell))
    m_c = np.bincount(ref_cell, minlength=anchors.shape[0])
    n_c = np.bincount(cur_cell, minlength=anchors.shape[0])
    offsets = np.concatenate([[0], np.cumsum(m_c)])
    ranks = np.array([conformal_rank(int(mc), level) if mc > 0 else 0 for mc in m_c])
    thresholds = np.where(m_c > 0, loo[order][np.maximum(offsets[:-1] + ranks - 1, 0)], np.inf)
    count = int(np.count_nonzero(distances > thresholds[cur_cell]))
    parts = [(int(n_c[c]), int(m_c[c] - ranks[c] + 1), int(ranks[c])) for c in np.flatnonzero((n_c > 0) & (m_c > 0))]
    pmf = sum_of_betabinomials(parts)
    tail = np.concatenate([np.cumsum(pmf[::-1])[::-1], [0.0]])  # tail[j] = P(C >= j)
    p_value = float(min(1.0, max(tail[count], 0.0)))
    mid_p = float(min(1.0, max(tail[count + 1] + 0.5 * pmf[count], 0.0)))
    # Below the null's middle the score is read off the lower tail, which is accurate where 1 - mid_p is not
    # (a window with far fewer novel rows than expected would otherwise round to p = 1, a score of -inf).
    lower = float(pmf[:count].sum() + 0.5 * pmf[count])
    score = normal_score(mid_p) if mid_p <= 0.5 else -normal_score(lower)
    expected = float(np.dot(np.arange(pmf.size), pmf))
    null_sd = float(np.sqrt(max(np.dot((np.arange(pmf.size) - expected) ** 2, pmf), 0.0)))
    q_index = int(np.searchsorted(np.cumsum(pmf), 1.0 - alpha))
    effect = (count - expected) / n
    details = {
        "min_effect": min_effect,
        "k": k,
        "level": level,
        "distance": "cosine",
        "cells": int(anchors.shape[0]),
        "cell_size": cell_size,
        "median_threshold_distance": float(np.median(thresholds[np.isfinite(thresholds)])),
        "novel": count,
        "novel_expected": expected,
        "null_sd": null_sd,
        "null_skew": 0.0,
        # The mid-p tail as a normal score: what the calibration reads (thresholds.result_score).
        "z": score,
        "mid_p": mid_p,
        "novel_share": count / n,
        "null_effect_q": (q_index - expected) / n,
        "median_distance": float(np.median(distances)),
        "reference_median_distance": float(np.median(loo)),
    }
    is_drift = bool(p_value <= alpha and effect >= min_effect)
    return DriftResult("novelty", float(count), p_value, alpha, is_drift, effect, m, n, details)
