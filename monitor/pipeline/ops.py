"""Pure operational and feedback metrics of one window slice: arrays in, metric points out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class MetricPoint:
    metric: str
    status: str  # ok | insufficient
    n: int
    value: float | None = None
    p_value: float | None = None
    threshold: float | None = None
    flagged: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _insufficient(metric: str, n: int, need: int) -> MetricPoint:
    return MetricPoint(metric, "insufficient", n, details={"reason": f"{n} samples, need {need}"})


def _finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


def ops_metrics(
    latency_ms: np.ndarray,
    has_error: np.ndarray,
    prompt_tokens: np.ndarray,
    completion_tokens: np.ndarray,
    *,
    min_samples: int,
) -> list[MetricPoint]:
    """Volume always; rates and percentiles only with at least `min_samples` values (else `insufficient`)."""
    n = int(has_error.shape[0])
    points = [MetricPoint("ops.volume", "ok", n, value=float(n))]
    if n < min_samples:
        points.append(_insufficient("ops.error_rate", n, min_samples))
    else:
        points.append(MetricPoint("ops.error_rate", "ok", n, value=float(np.mean(has_error))))
    lat = _finite(latency_ms)
    for q in (50, 95, 99):
        name = f"ops.latency_p{q}"
        if lat.size < min_samples:
            points.append(_insufficient(name, int(lat.size), min_samples))
        else:
            points.append(MetricPoint(name, "ok", int(lat.size), value=float(np.percentile(lat, q))))
    pt, ct = _finite(prompt_tokens), _finite(completion_tokens)
    for name, arr in (("ops.prompt_tokens_mean", pt), ("ops.completion_tokens_mean", ct)):
        if arr.size < min_samples:
            points.append(_insufficient(name, int(arr.size), min_samples))
        else:
            points.append(MetricPoint(name, "ok", int(arr.size), value=float(arr.mean())))
    points.append(MetricPoint("ops.tokens_total", "ok", n, value=float(pt.sum() + ct.sum())))
    return points


def feedback_metrics(positive: np.ndarray, *, min_samples: int) -> list[MetricPoint]:
    """`positive` holds one boolean per feedback item on the slice's events."""
    n = int(positive.shape[0])
    points = [MetricPoint("feedback.count", "ok", n, value=float(n))]
    if n < min_samples:
        points.append(_insufficient("feedback.positive_rate", n, min_samples))
    else:
        points.append(MetricPoint("feedback.positive_rate", "ok", n, value=float(np.mean(positive))))
    return points


def is_positive(score: float | None, label: str | None, *, threshold: float, positive_labels: set[str]) -> bool | None:
    """Score wins when present; else the label decides; None when feedback carries neither."""
    if score is not None:
        return score > threshold
    if label is not None:
        return label.lower() in positive_labels
    return None
