"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import os

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from sqlalchemy import Engine, text

from monitor import __version__
from monitor.migrations import current_revision, head_revision

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    # Answered on the event loop, not in the worker-thread pool: liveness must not depend on free threads
    # (blocking work of other routes runs in threads: monitor/api/offload.py, issue #18).
    return {"status": "ok", "version": __version__}


@router.get("/readyz", summary="Readiness: the database answers and is migrated to head")
def readyz(request: Request) -> JSONResponse:
    engine: Engine = request.app.state.engine
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        current = current_revision(engine)
    except Exception as exc:  # any failure to reach the database means "not ready", never a 500
        return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
    head = head_revision()
    if current != head:
        return JSONResponse(
            {"status": "unmigrated", "database_revision": current, "code_revision": head,
             "hint": "run `driftloop migrate`"},
            status_code=503,
        )
    return JSONResponse({"status": "ready", "database_revision": current})


def multiprocess_mode() -> bool:
    """prometheus_client's own switch: set when several worker processes serve the collector."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
def metrics() -> Response:
    if multiprocess_mode():
        # Whichever worker answers the scrape reports the sum over all of them, not only its own requests.
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
