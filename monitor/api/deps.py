"""Request-scoped dependencies: the database session, and the authenticated project with the scope a route needs.

Every project route declares one of `IngestProject`, `ReaderProject` or `AdminProject`; all three go through
`require_project` (authentication, then the rate limit), so there is one path for every keyed request."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated

import anyio
from fastapi import Depends, Header, HTTPException, Path, Request, status
from sqlalchemy.orm import Session, sessionmaker

from monitor import principals
from monitor.api.ratelimit import ITEMS, REQUESTS, RateLimiter
from monitor.models import Project
from monitor.principals import Principal
from monitor.projects.service import SCOPES, AuthenticatedKey, authenticate, grants, hash_key


def _release(session: Session) -> None:
    session.rollback()
    session.close()


async def _release_off_loop(session: Session) -> None:
    # Rolling back and returning the connection may talk to the database: in a worker thread, shielded so a
    # client that went away cannot leak the connection, and on a limiter of its own (FastAPI does the same for
    # sync generators) so a saturated thread pool whose threads wait for pool connections cannot keep the
    # connections that would free them from being released.
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(_release, session, limiter=anyio.CapacityLimiter(1))


@asynccontextmanager
async def _request_session(factory: sessionmaker[Session]) -> AsyncIterator[Session]:
    session = factory()
    try:
        yield session
    finally:
        await _release_off_loop(session)


# Async generators: opening a session does no I/O (the connection is checked out at its first query), so it is made
# on the event loop; a sync generator cost two worker-thread hops per request, one in and one out. Each enters the
# shared context manager with `async with`, which hands an exception raised by the route on to its clean-up (an
# `async for` over a shared generator would leave it suspended, its clean-up to the garbage collector).
async def get_session(request: Request) -> AsyncIterator[Session]:
    """One session per request. Handlers commit once, at the end; anything else is rolled back here."""
    factory: sessionmaker[Session] = request.app.state.session_factory
    async with _request_session(factory) as session:
        yield session


async def get_read_session(request: Request,
                           primary: Annotated[Session, Depends(get_session, scope="function")]
                           ) -> AsyncIterator[Session]:
    """The session GET routes and UI pages read through: one on the read replica when DRIFTLOOP_READ_DATABASE_URL
    is set (it refuses writes), else the request's own primary session (no second connection). API keys and UI
    logins are still checked on the primary (`require_project` uses `get_session`), so a key revoked a moment ago
    is refused whatever the replica's lag."""
    factory: sessionmaker[Session] | None = request.app.state.read_session_factory
    if factory is None:
        yield primary
        return
    async with _request_session(factory) as session:
        yield session


# Function-scoped: the session is rolled back and its connection returned after the route (and its response model)
# ran and before the response is sent, so a client that has its answer never races the session's clean-up, and the
# connection is back in the pool sooner.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]
# A row id in a path: bounded to the database's 64-bit ids, so a huge number is a 422, not a database error.
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]


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
    request: Request,
    session: SessionDep,
    # Parsed by hand for precise 401 messages; documented as the `projectKey` Bearer scheme (monitor/api/openapi.py).
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_driftloop_project: Annotated[
        str | None, Header(description="Optional: the project the key must belong to.")
    ] = None,
) -> AuthenticatedKey:
    key = _bearer(authorization)
    caller = authenticate(session, key)
    if caller is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"}
        )
    project = caller.project
    if x_driftloop_project is not None and x_driftloop_project != project.slug:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"this API key belongs to project {project.slug!r} and cannot write to {x_driftloop_project!r}",
        )
    # Limits are per key, named by (part of) its hash: the key itself never reaches Redis or memory dumps.
    identity = hash_key(key)[:32]
    request.state.rate_limit_identity = identity
    limiter(request).check(identity, REQUESTS)
    return caller


def limiter(request: Request) -> RateLimiter:
    rate_limiter: RateLimiter = request.app.state.rate_limiter
    return rate_limiter


def charge_items(request: Request, n: int) -> None:
    """Count `n` items against the key's item limit (after the batch parsed; 429 stores nothing)."""
    identity = getattr(request.state, "rate_limit_identity", None)
    if identity is not None:
        limiter(request).check(identity, ITEMS, n)


def _scope_check(scope: str) -> Callable[[AuthenticatedKey], Awaitable[Project]]:
    # Checked after `require_project`, so refused requests still count against the key's rate limit: a leaked
    # key cannot probe the routes it lacks the scope for any faster than it can use its own.
    # async: it only reads the key already loaded, and a sync dependency costs a worker-thread hop per request.
    async def check(caller: Annotated[AuthenticatedKey, Depends(require_project)]) -> Project:
        if not grants(caller.scopes, scope):
            held = ", ".join(caller.scopes) or "none"
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this API key lacks the {scope!r} scope this request needs (its scopes: {held}); "
                f"create a key with it: driftloop keys create {caller.project.slug} --scope {scope}",
            )
        return caller.project

    check.__name__ = f"require_{scope}_scope"  # tracebacks and dependency listings say which check it is
    return check


# One dependency function per scope: FastAPI caches a dependency's result per request by identity, and the
# OpenAPI document finds the scope a route needs by looking its dependency up here (`scope_of`).
_CHECKS: dict[str, Callable[[AuthenticatedKey], Awaitable[Project]]] = {scope: _scope_check(scope) for scope in SCOPES}


def require_scope(scope: str) -> Callable[[AuthenticatedKey], Awaitable[Project]]:
    """The dependency that lets a request through when its key holds `scope` (or one that implies it): 403 else."""
    try:
        return _CHECKS[scope]
    except KeyError:
        raise ValueError(f"unknown scope {scope!r}: choose from {', '.join(SCOPES)}") from None


def scope_of(call: object) -> str | None:
    """The scope a dependency function requires, if it is one of the scope checks."""
    return next((scope for scope, check in _CHECKS.items() if check is call), None)


async def key_principal(caller: Annotated[AuthenticatedKey, Depends(require_project)]) -> Principal:
    """The authenticated key behind this request, for the audit log (never a label the body chose)."""
    return principals.api_key(caller.key_id, caller.key_name)


KeyPrincipal = Annotated[Principal, Depends(key_principal)]
IngestProject = Annotated[Project, Depends(require_scope("ingest"))]  # POST events, feedback, OTLP
ReaderProject = Annotated[Project, Depends(require_scope("read"))]  # every GET of project data
AdminProject = Annotated[Project, Depends(require_scope("admin"))]  # every other write
