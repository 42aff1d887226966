"""Pure operational metrics."""

from __future__ import annotations

import numpy as np

from monitor.pipeline.ops import feedback_metrics, is_positive, ops_metrics


def _by_name(points):  # type: ignore[no-untyped-def]
    return {p.metric: p for p in points}


def test_ops_metrics_values() -> None:
    rng = np.random.default_rng(1)
    lat = rng.lognormal(6, 0.5, 500)
    lat[::50] = np.nan  # missing latencies are ignored, not zero
    err = np.zeros(500, dtype=bool)
    err[:25] = True
    pt, ct = rng.integers(5, 50, 500).astype(float), rng.integers(5, 200, 500).astype(float)
    p = _by_name(ops_metrics(lat, err, pt, ct, min_samples=30))
    assert p["ops.volume"].value == 500
    assert p["ops.error_rate"].value == 0.05
    finite = lat[np.isfinite(lat)]
    assert p["ops.latency_p95"].value == np.percentile(finite, 95) and p["ops.latency_p95"].n == finite.size
    assert p["ops.latency_p50"].value < p["ops.latency_p95"].value < p["ops.latency_p99"].value
    assert p["ops.tokens_total"].value == pt.sum() + ct.sum()


def test_small_windows_are_insufficient_not_zero() -> None:
    p = _by_name(ops_metrics(np.array([100.0] * 5), np.zeros(5, bool), np.ones(5), np.ones(5), min_samples=30))
    assert p["ops.volume"].value == 5 and p["ops.volume"].status == "ok"
    assert p["ops.error_rate"].status == "insufficient" and p["ops.error_rate"].value is None
    assert "need 30" in p["ops.latency_p99"].details["reason"]
    f = _by_name(feedback_metrics(np.array([True, False]), min_samples=30))
    assert f["feedback.positive_rate"].status == "insufficient"


def test_feedback_positivity() -> None:
    labels = {"thumbs_up"}
    assert is_positive(1.0, None, threshold=0.5, positive_labels=labels) is True
    assert is_positive(0.0, "thumbs_up", threshold=0.5, positive_labels=labels) is False  # score wins
    assert is_positive(None, "THUMBS_UP", threshold=0.5, positive_labels=labels) is True
    assert is_positive(None, None, threshold=0.5, positive_labels=labels) is None
    f = _by_name(feedback_metrics(np.array([True] * 30 + [False] * 10), min_samples=30))
    assert f["feedback.positive_rate"].value == 0.75
