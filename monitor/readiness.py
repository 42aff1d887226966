"""Is the database (and Redis, with the Celery runner) there and migrated? Checked before a CLI command first
touches the database, so a missing or stale setup is one line naming what is wrong and the command or variable
that fixes it, never a SQLite file created by accident followed by a 190-line `no such table` traceback.

The CLI turns the checks on (`enable`, which installs them as `monitor.db`'s engine check); `get_engine` runs
them once per URL before it builds an engine. The API and the workers keep their own answers (503 with
Retry-After, Celery's retries).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from monitor.queue import runs_inline
from monitor.settings import Settings

MIGRATE = "run `driftloop migrate`"
URL_VAR = "DRIFTLOOP_DATABASE_URL"
_on_failure: Callable[[str], NoReturn] | None = None


class NotReady(RuntimeError):
    """What is wrong and how to fix it, in one line."""


def enable(on_failure: Callable[[str], NoReturn] | None) -> None:
    """Check before the first connection (the CLI does, for each command); `on_failure` gets the one line and
    ends the command (it prints it and exits 1). None turns the checks off again."""
    from monitor import db

    global _on_failure
    _on_failure = on_failure
    db.set_engine_check(check_or_fail if on_failure is not None else None)


def enabled() -> bool:
    return _on_failure is not None


def check_or_fail(settings: Settings) -> None:
    """`check`, handing a NotReady's line to the handler given to `enable`."""
    try:
        check(settings)
    except NotReady as exc:
        if _on_failure is None:
            raise
        _on_failure(str(exc))


def redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<database url>"


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite URL names (None: in memory, or not SQLite)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    db = parsed.database or ""
    if db in ("", ":memory:") or db.startswith("file:"):
        return None
    return Path(db)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def check_database(url: str) -> None:
    """NotReady unless `url` names an existing, reachable database migrated to this code's head revision.

    Never creates anything: a SQLite file that does not exist is reported, not opened."""
    from monitor import migrations
    from monitor.db import make_engine

    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise NotReady(f"no database at {path} ({URL_VAR} is {redact(url)}): {MIGRATE} to create it, "
                       f"or set {URL_VAR} to your database")
    # A bounded wait: an unreachable host must not hang the command (psycopg waits forever by default).
    engine = make_engine(url) if path is not None else make_engine(url, connect_args={"connect_timeout": 5})
    try:
        current = migrations.current_revision(engine)
    except SQLAlchemyError as exc:
        kind = "Postgres" if url.startswith("postgres") else "the database"
        raise NotReady(f"cannot reach {kind} at {redact(url)} ({_first_line(exc)}): start it, or set {URL_VAR} "
                       "to a reachable database") from None
    finally:
        engine.dispose()
    head = migrations.head_revision()
    if current is None:
        raise NotReady(f"the database at {redact(url)} has no driftloop tables: {MIGRATE}")
    if current != head:
        raise NotReady(f"the database at {redact(url)} is at schema revision {current}, this driftloop needs "
                       f"{head}: {MIGRATE}")


def check_redis(url: str, timeout: float = 3.0) -> None:
    """NotReady unless Redis answers a PING within `timeout` seconds."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise NotReady(f"cannot reach Redis at {redact(url)} ({_first_line(exc)}): start it, set DRIFTLOOP_REDIS_URL, "
                       "or run without Celery (DRIFTLOOP_RUNNER=inprocess)") from None
    finally:
        client.close()


def check(settings: Settings) -> None:
    """Everything a command needs before it opens a session: the database, and Redis with the Celery runner."""
    check_database(settings.database_url)
    if not runs_inline(settings):
        check_redis(settings.redis_url)
