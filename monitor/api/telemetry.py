"""Prometheus instruments of the collector, defined once per process."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


def route_name(scope: Scope) -> str:
    # Label by route template, not raw path, so metrics cardinality stays bounded. The router records the
    # matched route in the scope (routers included with a prefix are not flat in `app.routes`).
    route = scope.get("route")
    return str(getattr(route, "path_format", None) or getattr(route, "path", None) or "unmatched")


class RequestMetrics:
    """ASGI middleware: counts every HTTP request by route, method and status, and times it to its last byte.

    Plain ASGI rather than `@app.middleware("http")`: Starlette's BaseHTTPMiddleware runs each request through a
    task group and memory streams, a fixed cost every ingest batch paid (docs/scaling.md, "Eighth round")."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # an exception before the response started is a 500 (the outer error middleware sends it)

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            route = route_name(scope)
            REQUESTS.labels(route, scope["method"], str(status)).inc()
            LATENCY.labels(route).observe(time.perf_counter() - start)
