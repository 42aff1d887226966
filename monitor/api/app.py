"""The collector app: ingestion, health, metrics; later capabilities add their routers here."""

from __future__ import annotations

import gc
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from monitor import __version__, composition
from monitor.alerts import routes as alert_routes
from monitor.api import health_routes
from monitor.api.admission import WriteAdmission
from monitor.api.body_cap import SmallBodies
from monitor.api.errors import install_error_handlers, refuse_nul_in_parameters
from monitor.api.header_limit import HeaderLimitMiddleware
from monitor.api.openapi import build_openapi
from monitor.api.ratelimit import build_rate_limiter
from monitor.api.telemetry import RequestMetrics
from monitor.db import make_engine, read_session_factory, session_factory
from monitor.events import routes as event_routes
from monitor.ingest import routes as ingest_routes
from monitor.ingest.otlp import routes as otlp_routes
from monitor.metrics import routes as metrics_routes
from monitor.metrics.catalog import catalog
from monitor.projects import routes as project_routes
from monitor.settings import Settings, get_settings
from monitor.ui.mount import install as mount_ui
from monitor.webhooks import routes as webhook_routes
from retrain import ui as retrain_ui
from retrain.api import router as retrain_router


@asynccontextmanager
async def _lifespan(_: FastAPI) -> AsyncIterator[None]:
    # The metric catalog imports the numeric stack (drift detectors, probe set): seconds of imports. Built lazily,
    # it was built by the first alert rule validated, and FastAPI validates JSON bodies on the event loop: in the
    # hostile-admin fault run that first request froze /healthz for ~10 s (issue #18). So it is built here, in a
    # thread, before the collector accepts requests (once per process; later calls hit the cache).
    await anyio.to_thread.run_sync(catalog)
    freeze_startup_heap()
    yield


_frozen = False


def freeze_startup_heap() -> None:
    """Move everything alive after start-up (modules, the app, the metric catalog: ~350k objects) out of the
    garbage collector's reach, once per process. Each batch allocates thousands of objects that live through the
    request, so full collections come every few tens of thousands of events, and each walked the whole start-up
    heap (~170 ms): about 2.5 µs of CPU per event in parsing alone (docs/scaling.md, "Fifth round"). Later
    objects are collected as before; only garbage among the frozen ones would stay, so this runs once, after a
    collection (tests create many apps in one process)."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


def create_app(settings: Settings | None = None, engine: Engine | None = None,
               read_engine: Engine | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = engine or make_engine(settings.database_url)
    # Reads (GET routes, UI pages) go to the replica when one is configured; without one, to the primary.
    if read_engine is None and settings.read_database_url:
        read_engine = make_engine(settings.read_database_url)
    # The event loop shares the GIL with worker threads doing blocking work (monitor/api/offload.py, sync routes).
    # At the default 5 ms switch interval a loop waiting behind a few busy threads answers /healthz tens of
    # ms late; 1 ms hands the GIL over sooner (issue #18: /healthz p99 under hostile admin load).
    sys.setswitchinterval(min(sys.getswitchinterval(), 0.001))
    composition.wire()  # the API is an entry point: work it queues runs inline or on Celery through the seam
    app = FastAPI(
        title="driftloop collector",
        version=__version__,
        description="Ingests LLM call events and feedback; serves metrics, alerts and the model loop.",
        max_body_size=settings.max_body_bytes,  # every route, including those FastAPI parses itself (413)
        dependencies=[Depends(refuse_nul_in_parameters)],  # every route's parameters and form fields (422)
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory(engine)
    app.state.read_engine = read_engine  # None: reads share the request's primary session
    app.state.read_session_factory = read_session_factory(read_engine) if read_engine is not None else None
    app.state.rate_limiter = build_rate_limiter(settings)

    app.include_router(health_routes.router)
    app.include_router(ingest_routes.router)
    app.include_router(event_routes.router)
    app.include_router(metrics_routes.router)
    app.include_router(project_routes.router)
    app.include_router(otlp_routes.router)
    app.include_router(alert_routes.router)
    app.include_router(webhook_routes.router)
    mount_ui(app)
    app.include_router(retrain_router)  # the API app is a composition root: it mounts the closed loop's routes
    retrain_ui.install(app)  # and the model pages of the approval UI
    install_error_handlers(app)
    app.add_middleware(WriteAdmission)  # non-ingest writes one at a time (issue #18: parsing on the loop)
    app.add_middleware(SmallBodies)  # 64 KiB for every route but ingestion (issue #18: hostile admin input)

    app.add_middleware(RequestMetrics)

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
        if not app.openapi_schema:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = _openapi  # type: ignore[method-assign]
    # Added last, so outermost: oversized headers are refused before metrics, sessions or routes see them.
    app.add_middleware(HeaderLimitMiddleware, max_header_bytes=settings.max_header_bytes)
    return app
