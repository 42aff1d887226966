"""Which session each route reads through (issue #22, read/write split): every GET route and UI page that takes
a database session takes the read session (`ReadSessionDep`, on the replica when DRIFTLOOP_READ_DATABASE_URL is
set), and no other method does. A new GET route written with `SessionDep` fails here, before it would send a
dashboard's reads to the primary."""

from __future__ import annotations

import pytest
from fastapi.dependencies.models import Dependant
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from monitor.api.app import create_app
from monitor.api.deps import get_read_session, get_session
from monitor.api.openapi import api_routes
from monitor.db import ReadOnlySessionError, read_session_factory
from monitor.models import Project
from monitor.settings import Settings

# GET routes that must see the primary: the sign-in form checks the operator's session (kept on the primary so a
# sign-out takes effect at once).
PRIMARY_GETS = {"/ui/login"}


def _direct_sessions(dependant: Dependant) -> set[str]:
    """Which session dependencies the endpoint itself declares ("read", "primary"), not those of its auth checks."""
    calls = {d.call for d in dependant.dependencies}
    return {name for name, fn in (("read", get_read_session), ("primary", get_session)) if fn in calls}


def test_get_routes_read_through_the_read_session_and_writes_never_do() -> None:
    app = create_app(Settings(database_url="sqlite://"), engine=create_engine("sqlite://"))
    reads, writes_on_read = [], []
    for route in api_routes(app):
        assert route.dependant is not None
        sessions = _direct_sessions(route.dependant)
        if "GET" in route.methods and route.path not in PRIMARY_GETS:
            assert "primary" not in sessions, f"GET {route.path} reads through the primary session (SessionDep)"
            reads += [route.path] if sessions else []
        elif "read" in sessions:
            writes_on_read.append(f"{sorted(route.methods)} {route.path}")
    assert writes_on_read == []
    # The read API and the UI pages (a refactoring that hid them from this walk would otherwise pass vacuously).
    assert {"/v1/events", "/v1/events/{event_id}", "/v1/metrics", "/v1/alerts", "/ui/p/{slug}/events",
            "/ui/p/{slug}/", "/v1/models"} <= set(reads), reads


def test_a_read_session_refuses_to_write() -> None:
    factory = read_session_factory(create_engine("sqlite://"))
    with factory() as session, pytest.raises(ReadOnlySessionError, match="writes go through the primary"):
        session.add(Project(slug="x", name="x"))
        session.flush()
    assert isinstance(factory(), Session)
