"""Request-scoped dependencies: the database session and the authenticated project."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status
from sqlalchemy.orm import Session, sessionmaker

from monitor.models import Project
from monitor.services.projects import authenticate


def get_session(request: Request) -> Iterator[Session]:
    """One session per request. Handlers commit once, at the end; anything else is rolled back here."""
    factory: sessionmaker[Session] = request.app.state.session_factory
    session = factory()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "malformed Authorization header: expected 'Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


def require_project(
    session: SessionDep,
    authorization: Annotated[str | None, Header()] = None,
    x_driftloop_project: Annotated[
        str | None, Header(description="Optional: the project the key must belong to.")
    ] = None,
) -> Project:
    key = _bearer(authorization)
    project = authenticate(session, key)
    if project is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"}
        )
    if x_driftloop_project is not None and x_driftloop_project != project.slug:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"this API key belongs to project {project.slug!r} and cannot write to {x_driftloop_project!r}",
        )
    return project


ProjectDep = Annotated[Project, Depends(require_project)]
