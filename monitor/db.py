"""Engine and session plumbing. Sessions are opened and committed at the edges (request, task, CLI)."""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import DateTime, Engine, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from monitor.settings import Settings, get_settings

T = TypeVar("T")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python on every backend.

    Postgres stores `timestamptz`; SQLite has no time zones, so values are stored as naive UTC and given
    their zone back on load. Comparisons in SQL then work the same on both.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the collector write while workers read; foreign keys are off by default in SQLite.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    # Statement parameters stay out of exception messages and logs: they carry prompts, key hashes, secrets.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


_ENGINES: dict[str, Engine] = {}
_engine_check: Callable[[Settings], None] | None = None


def set_engine_check(check: Callable[[Settings], None] | None) -> None:
    """Run `check(settings)` before the process-wide engine of a URL is first built (None: no check). A hook,
    so this module knows nothing of what is checked (`monitor.readiness` imports this one, not the reverse)."""
    global _engine_check
    _engine_check = check


def get_engine() -> Engine:
    """The process-wide engine for the configured database (one pool per URL).

    With a check installed (the CLI installs `monitor.readiness`'s) it runs first, once per URL: a missing or
    unmigrated database ends the command in one line, and no SQLite file is created here."""
    settings = get_settings()
    url = settings.database_url
    engine = _ENGINES.get(url)
    if engine is None:
        if _engine_check is not None:
            _engine_check(settings)
        engine = _ENGINES[url] = make_engine(url)
    return engine


def session_factory(engine: Engine | None = None) -> sessionmaker[Session]:
    return sessionmaker(bind=engine or get_engine(), expire_on_commit=False)


class ReadOnlySessionError(RuntimeError):
    """A write through a session meant only for reads (bound to the read replica)."""


def _refuse_flush(session: Session, *_: Any) -> None:
    raise ReadOnlySessionError("a read-only session (DRIFTLOOP_READ_DATABASE_URL) was asked to write; "
                               "writes go through the primary's session")


def read_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for reads only (bound to the read replica): an ORM flush is refused here, with a message, rather
    than by the replica's "cannot execute INSERT in a read-only transaction" at the end of a request."""
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    event.listen(factory, "before_flush", _refuse_flush)
    return factory


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error. For CLI commands and tasks."""
    session = session_factory(engine)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


UNIT_ATTEMPTS = 5


def is_sqlite_busy(exc: BaseException) -> bool:
    """SQLite's "database is locked": another connection holds the write lock past the busy timeout, or (in WAL
    mode) this transaction read a snapshot that another connection's commit made stale before it could write.
    The second kind fails at once, whatever the busy timeout, and only a new transaction gets past it."""
    return (isinstance(exc, OperationalError) and isinstance(exc.orig, sqlite3.OperationalError)
            and "database is locked" in str(exc.orig))


def run_unit(factory: sessionmaker[Session], fn: Callable[[Session], T], *, attempts: int = UNIT_ATTEMPTS) -> T:
    """Run `fn` in a session of its own and commit once; roll back on any error (the edge of a task stage).

    On SQLite a unit that lost the write lock to another connection is rolled back and run again in a new
    transaction (up to `attempts` times, with a short random back-off): the embedded mode has several writers
    in one process (ingest, the runner, webhook delivery) and units are idempotent by design."""
    for attempt in range(1, attempts + 1):
        with factory() as session:
            try:
                out = fn(session)
                session.commit()
                return out
            except BaseException as exc:
                session.rollback()
                if attempt == attempts or not is_sqlite_busy(exc):
                    raise
        time.sleep(random.uniform(0.0, min(0.05 * 2**attempt, 1.0)))  # de-synchronise the writers that collided
    raise AssertionError("unreachable")


def reset_engines() -> None:
    """Dispose every pooled connection (tests; worker processes after fork must not share sockets)."""
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()
