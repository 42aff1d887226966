"""Drift tests for scalar series: prompt/response length, latency, token counts, scores.

* `ks`: two-sample Kolmogorov-Smirnov (scipy). Statistic D = largest gap between the two empirical
  CDFs, which is also the effect size. Like the embedding detectors it needs both p <= alpha and
  D >= min_effect (default 0.1), because at 100k events per side a D of 0.01 is "significant"
  and nobody should be paged for it.
* `psi`: Population Stability Index over quantile bins of the reference. No p-value; the
  conventional reading is < 0.1 stable, 0.1-0.2 moderate, > 0.2 significant shift, hence the
  default threshold 0.2. PSI is biased upwards in small windows (under no drift its expectation is
  about (bins - 1) * (1/n_reference + 1/n_current)), hence a larger default `min_samples` (100).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import ks_2samp

from monitor.drift._validate import DEFAULT_MIN_SAMPLES, check_alpha, check_pair
from monitor.drift.registry import register
from monitor.drift.result import DriftResult

DEFAULT_KS_MIN_EFFECT = 0.1
DEFAULT_PSI_THRESHOLD = 0.2
PSI_MIN_SAMPLES = 100


@register("ks", kind="scalar")
def ks_test(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    alpha: float = 0.01,
    seed: int | None = None,
    min_effect: float = DEFAULT_KS_MIN_EFFECT,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> DriftResult:
    """Two-sample Kolmogorov-Smirnov test; drift when p <= alpha AND D >= min_effect.

    `seed` is accepted for the common signature; the test is deterministic.
    """
    check_alpha(alpha)
    ref, cur = check_pair(reference, current, kind="scalar", min_samples=min_samples)
    test = ks_2samp(ref, cur, alternative="two-sided", method="auto")
    d, p_value = float(test.statistic), float(test.pvalue)
    is_drift = bool(p_value <= alpha and d >= min_effect)
    details = {"min_effect": min_effect, "location": float(test.statistic_location)}
    return DriftResult("ks", d, p_value, alpha, is_drift, d, ref.size, cur.size, details)


def quantile_bin_edges(reference: np.ndarray, n_bins: int) -> np.ndarray:
    """Interior cut points at reference quantiles; duplicates (discrete data) merged, so there may be
    fewer than `n_bins` bins. The outer bins are open-ended, so current values outside the
    reference's range still land in a bin."""
    cuts = np.quantile(reference, np.linspace(0.0, 1.0, n_bins + 1)[1:-1])
    return np.unique(cuts)


def psi_value(
    reference: np.ndarray, current: np.ndarray, edges: np.ndarray, eps: float
) -> tuple[float, np.ndarray, np.ndarray]:
    """PSI = sum (c - r) * ln(c / r) over bins, with shares floored at `eps` so empty bins stay finite."""
    n_bins = edges.size + 1
    # side="right": a value equal to a cut goes to the upper bin, consistently for both samples.
    ref_counts = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=n_bins)
    cur_counts = np.bincount(np.searchsorted(edges, current, side="right"), minlength=n_bins)
    ref_share = np.maximum(ref_counts / reference.size, eps)
    cur_share = np.maximum(cur_counts / current.size, eps)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share))), ref_share, cur_share


@register("psi", kind="scalar")
def psi_test(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    alpha: float = 0.01,
    seed: int | None = None,
    threshold: float = DEFAULT_PSI_THRESHOLD,
    n_bins: int = 10,
    eps: float = 1e-4,
    min_samples: int = PSI_MIN_SAMPLES,
) -> DriftResult:
    """Population Stability Index over reference-quantile bins; drift when PSI > threshold (default 0.2).

    `alpha` and `seed` are accepted for the common signature and unused (PSI has no p-value).
    """
    check_alpha(alpha)
    if n_bins < 2:
        raise ValueError(f"n_bins must be at least 2, got {n_bins}")
    if not 0.0 < eps < 1.0 / n_bins:
        raise ValueError(f"eps must be in (0, 1/n_bins), got {eps}")
    ref, cur = check_pair(reference, current, kind="scalar", min_samples=min_samples)
    edges = quantile_bin_edges(ref, n_bins)
    value, ref_share, cur_share = psi_value(ref, cur, edges, eps)
    details = {
        "bin_edges": edges.tolist(),
        "reference_shares": ref_share.tolist(),
        "current_shares": cur_share.tolist(),
        "null_expectation": (edges.size) * (1.0 / ref.size + 1.0 / cur.size),
    }
    return DriftResult(
        "psi", value, None, threshold, bool(value > threshold), value, ref.size, cur.size, details
    )
