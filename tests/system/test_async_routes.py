"""No blocking work on the event loop (issue #18, finding 2: "audit every `async def` route for the same").

FastAPI runs a plain `def` route or dependency in a worker thread and an `async def` one on the event loop, where
a database query, a large parse or a file read stalls every other request, `/healthz` included. This test lists
every coroutine (`async def`, async generator) among the collector's route endpoints and their dependencies
(followed through sub-dependencies) and compares it with the reviewed list below, each entry with the reason it
may run on the loop. A new
`async def` route or dependency fails here until someone has looked at it: make it a `def`, move its blocking
part into `run_blocking` / `run_in_threadpool`, or add it below saying why it only awaits."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from fastapi import params
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant
from fastapi.routing import APIRoute

from monitor.api.app import create_app
from monitor.settings import Settings

REVIEWED = {
    # liveness answered on the loop on purpose: it must not wait for a free worker thread
    "monitor.api.health_routes.healthz": "returns a constant",
    # reads the capped body (awaits), then parses and applies the file in `run_blocking(lane="admin")`
    "monitor.alerts.routes.import_rules": "awaits read_body, the rest runs in a worker thread",
    # `read_body` (awaited by the next two and by import_rules) only collects the capped stream; no parsing
    "monitor.ingest.routes._raw_body": "awaits read_body",
    "monitor.ingest.otlp.routes._raw": "awaits read_body",
    # ingestion: one worker-thread hop per batch (inflate, parse, redact, write, commit all in `run_in_threadpool`)
    "monitor.ingest.routes.post_events": "awaits run_in_threadpool(_store_events)",
    "monitor.ingest.routes.post_feedback": "awaits run_in_threadpool(_store_feedback)",
    "monitor.ingest.otlp.routes.post_traces": "awaits run_in_threadpool(_store_traces)",
    # sessions: made on the loop (no I/O until the first query), rolled back and closed in a worker thread
    "monitor.api.deps.get_session": "creates a Session (no I/O); releases it via anyio.to_thread.run_sync",
    "monitor.api.deps.get_read_session": "creates a Session (no I/O); releases it via anyio.to_thread.run_sync",
    # the scope checks read the key `require_project` (a def, in a worker thread) already loaded
    "monitor.api.deps._scope_check.<locals>.check": "compares the loaded key's scopes; no I/O",
    "monitor.api.deps.key_principal": "builds a Principal from the loaded key; no I/O",
    # form bodies outside ingestion are capped at 64 KiB (monitor/api/body_cap.py); Starlette keeps the parsed form
    "monitor.api.errors.refuse_nul_in_parameters": "awaits request.form() (<= 64 KiB), scans strings for NUL",
    "monitor.ui.security.require_form_operator": "awaits request.form(), compares one token",
    "monitor.ui.routes_settings._form_fields": "awaits request.form()",
}


def _name(call: Any) -> str:
    return f"{call.__module__}.{call.__qualname__}"


def _coroutines(dependant: Dependant, found: set[str]) -> None:
    call = dependant.call
    if call is not None and (inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)):
        found.add(_name(call))
    elif call is not None and not inspect.isroutine(call) and inspect.iscoroutinefunction(type(call).__call__):
        found.add(_name(type(call)))  # a dependency that is an instance with `async def __call__`
    for sub in dependant.dependencies:
        _coroutines(sub, found)


def _walk(routes: list[Any], dependencies: list[params.Depends], found: set[str]) -> list[APIRoute]:
    """API routes under `routes`, following included routers and mounts; coroutine dependencies declared on
    routers (`APIRouter(dependencies=...)`, `FastAPI(dependencies=...)`) are collected into `found` as well."""
    for depends in dependencies:
        if depends.dependency is not None:
            _coroutines(get_dependant(path="", call=depends.dependency), found)
    out: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            out.append(route)
        elif (router := getattr(route, "original_router", None)) is not None:  # FastAPI's included router
            out += _walk(list(router.routes), list(router.dependencies), found)
        elif (mounted := getattr(route, "routes", None)) is not None:
            out += _walk(list(mounted), [], found)
    return out


def test_every_coroutine_route_and_dependency_has_been_reviewed(tmp_path: Path, sqlite_url: str) -> None:
    app = create_app(Settings(database_url=sqlite_url, data_dir=tmp_path / "data"))
    found: set[str] = set()
    routes = _walk(list(app.router.routes), list(app.router.dependencies), found)
    assert len(routes) > 50  # the whole collector: API, UI and the retrain pages
    for route in routes:
        _coroutines(route.dependant, found)
    unreviewed = found - REVIEWED.keys()
    assert not unreviewed, f"async def routes/dependencies that run on the event loop, not reviewed: {unreviewed}"
    assert REVIEWED.keys() - found == set(), "the reviewed list names coroutines that no longer exist"


def test_the_settings_save_runs_off_the_event_loop() -> None:
    """The one route the audit found doing database work and rendering on the loop (fixed): a plain `def` now."""
    from monitor.ui.routes_settings import save_section

    assert not inspect.iscoroutinefunction(save_section)


def test_the_metric_catalog_is_built_before_the_first_request(tmp_path: Path, sqlite_url: str) -> None:
    """Alert rule bodies are validated by FastAPI on the event loop, and validating a metric name builds the
    catalog, which imports the numeric stack (seconds). The hostile-admin fault run showed the first such request
    freezing /healthz for ~10 s; the app builds the catalog at startup, in a thread, instead."""
    from fastapi.testclient import TestClient

    from monitor.metrics.catalog import catalog

    app = create_app(Settings(database_url=sqlite_url, data_dir=tmp_path / "data"))
    catalog.cache_clear()
    with TestClient(app):  # startup (lifespan) ran; no request has been made
        assert catalog.cache_info().currsize == 1
