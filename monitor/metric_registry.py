"""Every metric driftloop computes, by name. Alert rules, the read API and dashboards refer to these names.

A metric row carries `value` (the headline number), and where it applies `p_value`, `threshold` and
`flagged` (the detector's own verdict), so a rule can test any of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["ops", "feedback", "drift", "safety", "bias"]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: Kind
    description: str
    unit: str = ""


_REGISTRY: dict[str, MetricSpec] = {}


def register_metric(spec: MetricSpec) -> MetricSpec:
    existing = _REGISTRY.get(spec.name)
    if existing is not None and existing != spec:
        raise ValueError(f"metric {spec.name!r} is already registered differently")
    _REGISTRY[spec.name] = spec
    return spec


def get_metric(name: str) -> MetricSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)[:40])
        raise KeyError(f"unknown metric {name!r}; known metrics include: {known}") from None


def all_metrics() -> list[MetricSpec]:
    return sorted(_REGISTRY.values(), key=lambda s: s.name)


for _name, _desc, _unit in (
    ("ops.volume", "Events in the window", "events"),
    ("ops.error_rate", "Share of events with an error", "ratio"),
    ("ops.latency_p50", "Median latency", "ms"),
    ("ops.latency_p95", "95th percentile latency", "ms"),
    ("ops.latency_p99", "99th percentile latency", "ms"),
    ("ops.prompt_tokens_mean", "Mean prompt tokens", "tokens"),
    ("ops.completion_tokens_mean", "Mean completion tokens", "tokens"),
    ("ops.tokens_total", "Prompt plus completion tokens", "tokens"),
):
    register_metric(MetricSpec(_name, "ops", _desc, _unit))
register_metric(MetricSpec("feedback.positive_rate", "feedback", "Share of feedback that is positive", "ratio"))
register_metric(MetricSpec("feedback.count", "feedback", "Feedback items on the window's events", "items"))

EMBEDDING_FIELDS = ("prompt", "response")
SCALAR_SERIES = ("prompt_length", "response_length", "latency_ms", "completion_tokens")


def drift_metric_name(series: str, method: str) -> str:
    return f"drift.{series}.{method}"


def register_drift_metrics(embedding_methods: list[str], scalar_methods: list[str]) -> None:
    for field in EMBEDDING_FIELDS:
        for method in embedding_methods:
            register_metric(MetricSpec(drift_metric_name(field, method), "drift",
                                       f"{method} drift of {field} embeddings vs the reference", "statistic"))
    for series in SCALAR_SERIES:
        for method in scalar_methods:
            register_metric(MetricSpec(drift_metric_name(series, method), "drift",
                                       f"{method} drift of {series} vs the reference", "statistic"))
