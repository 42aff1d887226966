"""Shared fixtures: a real Postgres database of the tests' own (migrated once, each test rolled back), a
migrated SQLite file, Redis, and app clients bound to either."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, event
from sqlalchemy.orm import Session, sessionmaker

from monitor import composition, migrations
from monitor.api.app import create_app
from monitor.db import make_engine
from monitor.settings import Settings
from tests.support import services

# Model code must never reach for a hub during tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# One data directory for the whole session, so the converted SmolLM2 weights are cached once and shared by
# every test that loads the default model (the first-load test uses a directory of its own on purpose).
os.environ.setdefault("DRIFTLOOP_DATA_DIR", tempfile.mkdtemp(prefix="driftloop-test-data-"))


@pytest.fixture(scope="session", autouse=True)
def _wired() -> None:
    """What an entry point does first (`monitor.composition.wire`): tests call services and the runner directly."""
    composition.wire()


@pytest.fixture(scope="session")
def _servers() -> Iterator[tuple[str, str]]:
    throwaways = services.Throwaways()
    try:
        yield services.resolve(throwaways)
    except RuntimeError as exc:
        pytest.exit(str(exc), returncode=3)
    finally:
        throwaways.stop()


@pytest.fixture(scope="session")
def pg_url(_servers: tuple[str, str], worker_id: str) -> Iterator[str]:
    """A fresh, migrated database for this test session (one per xdist worker)."""
    name = f"driftloop_test_{services.checkout_tag()}_{worker_id}"
    url = services.recreate_database(_servers[0], name)
    migrations.upgrade(url)
    yield url
    services.drop_database(_servers[0], name)


@pytest.fixture
def celery_key_prefix() -> str:
    """Celery keys of this test alone: checkouts and xdist workers sharing one Redis never see each other's
    tasks, and nothing needs flushing."""
    return f"driftloop-test-{services.checkout_tag()}-{uuid.uuid4().hex[:8]}:"


@pytest.fixture(scope="session")
def redis_url(_servers: tuple[str, str]) -> str:
    return _servers[1]


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("sqlite") / "driftloop.db"
    url = f"sqlite:///{path}"
    migrations.upgrade(url)
    return url


@pytest.fixture(scope="session")
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    """An engine as production makes it (for tests that run real concurrent work on SQLite)."""
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_rollback_engine(sqlite_url: str) -> Iterator[Engine]:
    """The engine behind the per-test rolled-back SQLite connection.

    pysqlite starts a transaction only before the first write and ignores SAVEPOINT bookkeeping, so a rolled-back
    connection let commits through. SQLAlchemy's documented fix: driver autocommit off, BEGIN emitted by SQLAlchemy
    itself. Kept off the production-like `sqlite_engine`: an eager BEGIN makes a read-then-write transaction fail
    at once ("database is locked") when another connection wrote first, where production retries."""
    engine = make_engine(sqlite_url)

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")

    yield engine
    engine.dispose()


def _rolled_back_connection(engine: Engine) -> Iterator[Connection]:
    conn = engine.connect()
    outer = conn.begin()
    try:
        yield conn
    finally:
        outer.rollback()
        conn.close()


@pytest.fixture(params=["postgres", "sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def connection(backend: str, request: pytest.FixtureRequest) -> Iterator[Connection]:
    """A connection inside a transaction that is rolled back after the test, on each backend."""
    engine: Engine = request.getfixturevalue("pg_engine" if backend == "postgres" else "sqlite_rollback_engine")
    yield from _rolled_back_connection(engine)


@pytest.fixture
def session_maker(connection: Connection) -> sessionmaker[Session]:
    # Commits inside the code under test become savepoint releases; the outer transaction still rolls back.
    return sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)


@pytest.fixture
def session(session_maker: sessionmaker[Session]) -> Iterator[Session]:
    with session_maker() as s:
        yield s


@pytest.fixture
def settings(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    url = request.getfixturevalue("pg_url" if backend == "postgres" else "sqlite_url")
    return Settings(database_url=url, data_dir=tmp_path / "data")


@pytest.fixture
def client(settings: Settings, connection: Connection, session_maker: sessionmaker[Session]) -> Iterator[TestClient]:
    """The collector app, its sessions joined to the test's rolled-back transaction."""
    app = create_app(settings, engine=connection.engine)
    app.state.session_factory = session_maker
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="session")
def worker_id(request: pytest.FixtureRequest) -> str:
    # pytest-xdist provides this fixture when installed; this fallback keeps plain runs working.
    return str(getattr(request.config, "workerinput", {}).get("workerid", "main"))
