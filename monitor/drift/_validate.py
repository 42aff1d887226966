"""Input checks shared by the detectors: shapes, finiteness, sample counts, bounded subsampling."""

from __future__ import annotations

import numpy as np

from monitor.drift.result import InsufficientDataError

DEFAULT_MIN_SAMPLES = 20
"""Fewest items per side a detector accepts. Below ~20 a permutation or rank test cannot reach
alpha=0.01 with any useful power, and an hourly window that small says nothing about drift; the
caller gets InsufficientDataError and should record the window as insufficient."""


def as_embeddings(name: str, x: object) -> np.ndarray:
    """A 2-D float array (float16/32/64 kept as given; cast later in bounded chunks)."""
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (items x dimensions), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr


def as_series(name: str, x: object) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D series, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def check_finite(name: str, arr: np.ndarray, chunk_rows: int = 65_536) -> None:
    """Refuse NaN/inf: they silently poison kernels, quantiles and classifiers."""
    for start in range(0, arr.shape[0], chunk_rows):
        block = arr[start : start + chunk_rows]
        if not np.isfinite(block).all():
            bad = int(np.count_nonzero(~np.isfinite(block).reshape(block.shape[0], -1).all(axis=1)))
            raise ValueError(
                f"{name} contains NaN or infinite values (at least {bad} rows); drop or impute them first"
            )


def check_pair(
    reference: object, current: object, *, kind: str, min_samples: int
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a reference/current pair for an `embedding` (2-D) or `scalar` (1-D) detector."""
    if min_samples < 2:
        raise ValueError(f"min_samples must be at least 2, got {min_samples}")
    if kind == "embedding":
        ref, cur = as_embeddings("reference", reference), as_embeddings("current", current)
        if ref.shape[1] != cur.shape[1]:
            raise ValueError(
                f"reference and current must have the same dimension, got {ref.shape[1]} and {cur.shape[1]}"
            )
        if ref.shape[1] == 0:
            raise ValueError("embeddings have zero dimensions")
    else:
        ref, cur = as_series("reference", reference), as_series("current", current)
    for name, arr in (("reference", ref), ("current", cur)):
        if arr.shape[0] < min_samples:
            raise InsufficientDataError(
                f"{name} has {arr.shape[0]} samples; at least min_samples={min_samples} are needed"
            )
        check_finite(name, arr)
    return ref, cur


def check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def subsample(arr: np.ndarray, max_rows: int | None, rng: np.random.Generator) -> np.ndarray:
    """At most `max_rows` rows drawn without replacement (order kept); the array itself if it fits."""
    if max_rows is None or arr.shape[0] <= max_rows:
        return arr
    idx = np.sort(rng.choice(arr.shape[0], size=max_rows, replace=False))
    return arr[idx]
