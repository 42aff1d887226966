"""Prometheus instruments of the collector, defined once per process."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter("driftloop_http_requests_total", "HTTP requests", ["route", "method", "status"])
LATENCY = Histogram(
    "driftloop_http_request_seconds",
    "HTTP request latency",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ITEMS = Counter(
    "driftloop_ingested_items_total",
    "Events and feedback items by outcome (accepted, duplicate, rejected)",
    ["kind", "outcome"],
)
OTLP_SPANS = Counter(
    "driftloop_otlp_spans_total", "OTLP spans by kind (llm: stored as events, ignored: not LLM calls, malformed)",
    ["kind"],
)
