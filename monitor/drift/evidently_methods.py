"""Evidently 0.7's embedding-drift methods, run on our arrays and returned as `DriftResult`.

These are for parity and comparison (bench/drift.py runs them beside ours): Evidently's methods
return a score and a fixed-threshold verdict, with no p-value and no control of false alarms at
large N, so they are not the defaults. Wrapped from
`evidently.legacy.metrics.data_drift.embedding_drift_methods`:

* `evidently_model`: SGD logistic classifier on a 50/50 train/test split, score = ROC AUC,
  drift when > 0.55 (or, with bootstrap=True, above the 95th percentile of random-score AUCs).
* `evidently_ratio`: share of embedding dimensions whose per-dimension test (Wasserstein distance,
  normed, threshold 0.1) fires; drift when > 0.2.
* `evidently_distance`: distance between mean embeddings (euclidean default); drift when > 0.2.
* `evidently_mmd`: unbiased MMD² with an RBF kernel (full kernel matrix); drift when > 0.015.

Evidently builds a full kernel matrix for MMD (memory quadratic in N) and loops in Python for the
others, so windows are subsampled (seeded) to `max_per_side`. Extra keyword parameters are passed
to Evidently's factory (threshold, bootstrap, quantile_probability, pca_components, dist, ...).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from monitor.drift._validate import DEFAULT_MIN_SAMPLES, check_alpha, check_pair, subsample
from monitor.drift.registry import register
from monitor.drift.result import DriftResult

_DEFAULT_THRESHOLDS = {"model": 0.55, "ratio": 0.2, "distance": 0.2, "mmd": 0.015}


def import_evidently(module: str) -> ModuleType:
    """Import an Evidently module (slow: ~5 s the first time, hence lazy), under pandas 2 or 3."""
    import pandas.core.dtypes.common as pandas_common

    if not hasattr(pandas_common, "infer_dtype_from_object"):
        # Evidently 0.7 imports this helper, removed in pandas 3, at package import time (it is only
        # used by its column-type data test, never on our path). Restore an equivalent so the
        # package imports under pandas 3; a no-op under pandas 2.
        pandas_common.infer_dtype_from_object = lambda dtype: pandas_common.pandas_dtype(dtype).type
    with warnings.catch_warnings():
        # Evidently's import chain emits deprecation warnings from its web-server dependencies,
        # which have nothing to do with what we use.
        warnings.simplefilter("ignore", DeprecationWarning)
        return importlib.import_module(module)


def _load_evidently_methods() -> ModuleType:
    """Evidently's embedding drift module."""
    return import_evidently("evidently.legacy.metrics.data_drift.embedding_drift_methods")


def _run_evidently(
    kind: str,
    reference: np.ndarray,
    current: np.ndarray,
    *,
    alpha: float,
    seed: int | None,
    max_per_side: int,
    min_samples: int,
    params: dict[str, Any],
) -> DriftResult:
    import pandas as pd

    check_alpha(alpha)
    ref, cur = check_pair(reference, current, kind="embedding", min_samples=min_samples)
    rng = np.random.default_rng(seed)
    ref_s, cur_s = subsample(ref, max_per_side, rng), subsample(cur, max_per_side, rng)
    module = _load_evidently_methods()
    factory: Callable[..., Any] = getattr(module, kind)
    method = factory(**params)
    # Evidently's bootstrap calls np.random.seed(i) in a loop: save and restore the global numpy
    # RNG so the host's random stream is not silently reset. Fresh DataFrames each call, because
    # the model method adds a "target" column to the frames it is given.
    saved_state = np.random.get_state()
    try:
        score, drifted, _ = method(
            pd.DataFrame(cur_s.astype(np.float64)), pd.DataFrame(ref_s.astype(np.float64))
        )
    finally:
        np.random.set_state(saved_state)
    threshold = float(params.get("threshold", _DEFAULT_THRESHOLDS[kind]))
    details: dict[str, Any] = {
        "evidently_method": kind,
        "params": dict(params),
        "n_used_reference": int(ref_s.shape[0]),
        "n_used_current": int(cur_s.shape[0]),
    }
    if params.get("bootstrap"):
        details["threshold_source"] = "Evidently bootstrap quantile (not exposed); `threshold` unused"
    return DriftResult(
        method=f"evidently_{kind}",
        statistic=float(score),
        p_value=None,
        threshold=threshold,
        is_drift=bool(drifted),
        effect_size=None,
        n_reference=int(ref.shape[0]),
        n_current=int(cur.shape[0]),
        details=details,
    )


def _wrapper(kind: str, default_max_per_side: int, summary: str) -> Callable[..., DriftResult]:
    """One registered detector per Evidently method: same call shape, its own subsample default."""

    def detector(
        reference: np.ndarray,
        current: np.ndarray,
        *,
        alpha: float = 0.01,
        seed: int | None = None,
        max_per_side: int = default_max_per_side,
        min_samples: int = DEFAULT_MIN_SAMPLES,
        **params: Any,
    ) -> DriftResult:
        return _run_evidently(kind, reference, current, alpha=alpha, seed=seed, max_per_side=max_per_side,
                              min_samples=min_samples, params=params)

    detector.__name__ = detector.__qualname__ = f"evidently_{kind}"
    detector.__doc__ = summary
    return register(f"evidently_{kind}", kind="embedding")(detector)


evidently_model = _wrapper("model", 5000,
                           "Evidently's classifier method (ROC AUC of an SGD classifier; drift when > 0.55).")
evidently_ratio = _wrapper("ratio", 5000, "Evidently's ratio method (share of drifted dimensions; drift when > 0.2).")
evidently_distance = _wrapper("distance", 5000,
                              "Evidently's distance method (distance between mean embeddings; drift when > 0.2).")
# Evidently's MMD builds the full kernel matrix (memory quadratic in N): a smaller default subsample.
evidently_mmd = _wrapper("mmd", 2000, "Evidently's MMD method (unbiased MMD², full kernel matrix; drift when > 0.015).")
