"""The collector app: ingestion, health, metrics; later capabilities add their routers here."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.routing import Match

from monitor import __version__
from monitor.api import alert_routes, health_routes, ingest_routes, metrics_routes, otlp_routes, webhook_routes
from monitor.api.telemetry import LATENCY, REQUESTS
from monitor.db import make_engine, session_factory
from monitor.schemas import EventBatch, FeedbackBatch
from monitor.settings import Settings, get_settings


def _route_name(request: Request) -> str:
    # Label by route template, not raw path, so metrics cardinality stays bounded. The router records the
    # route it matched in the scope; matching again against the app's top-level routes would only find the
    # wrapper of an included router (no path of its own), so every request used to be labelled alike.
    matched = request.scope.get("route")
    path = getattr(matched, "path", None)
    if isinstance(path, str):
        return path
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match == Match.FULL and isinstance(getattr(route, "path", None), str):
            return str(route.path)
    return "unmatched"


def _include_optional_routers(app: FastAPI) -> None:
    # The closed loop (`retrain`) mounts its routes when installed; `monitor` never depends on it.
    if importlib.util.find_spec("retrain") is None:
        return
    from retrain.api import router as retrain_router

    app.include_router(retrain_router)


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = engine or make_engine(settings.database_url)
    app = FastAPI(
        title="driftloop collector",
        version=__version__,
        description="Ingests LLM call events and feedback; serves metrics, alerts and the model loop.",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory(engine)

    app.include_router(health_routes.router)
    app.include_router(ingest_routes.router)
    app.include_router(metrics_routes.router)
    app.include_router(otlp_routes.router)
    app.include_router(alert_routes.router)
    app.include_router(webhook_routes.router)
    _include_optional_routers(app)

    @app.middleware("http")
    async def _observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = _route_name(request)
            REQUESTS.labels(route, request.method, str(status)).inc()
            LATENCY.labels(route).observe(time.perf_counter() - start)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _database_unavailable(_: Request, exc: Exception) -> JSONResponse:
        # The batch was not committed, so the client may safely retry it; tell it when.
        return JSONResponse(
            {"detail": f"database unavailable ({type(exc).__name__}); nothing was stored, retry later"},
            status_code=503,
            headers={"Retry-After": str(settings.retry_after_seconds)},
        )

    def _openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (EventBatch, FeedbackBatch):
            body = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(body.pop("$defs", {}))
            components[model.__name__] = body
        app.openapi_schema = schema
        return schema

    app.openapi = _openapi  # type: ignore[method-assign]
    return app
