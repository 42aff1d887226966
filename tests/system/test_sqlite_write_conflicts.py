"""Embedded mode has several writers in one process (ingest, the runner, webhook delivery, retraining). In WAL
mode a transaction that read before another connection committed cannot write at all ("database is locked" at
once, whatever the busy timeout): `run_unit` must start the unit again in a new transaction, and an alert action
handler that hit it must not be recorded as a failed action."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerts.actions import handle, register_action_handler, unregister_action_handler
from monitor.alerts.models import AlertActionRequest
from monitor.db import is_sqlite_busy, make_engine, run_unit


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'units.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE notes (body TEXT NOT NULL)"))
    return engine


def _count(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(text("SELECT body FROM notes ORDER BY body"))]


def _stale_write(engine: Engine, other: Engine, session: Session, body: str) -> None:
    """Read inside a transaction, let another connection commit, then write: SQLite's stale-snapshot conflict."""
    with session.begin_nested():
        session.execute(text("SELECT count(*) FROM notes")).scalar_one()
        with other.begin() as conn:
            conn.execute(text("INSERT INTO notes VALUES ('other writer')"))
        session.execute(text("INSERT INTO notes VALUES (:b)"), {"b": body})


def test_a_unit_that_lost_the_write_lock_runs_again_in_a_new_transaction(engine: Engine) -> None:
    other = make_engine(str(engine.url))
    calls: list[int] = []

    def unit(session: Session) -> str:
        calls.append(1)
        if len(calls) == 1:
            _stale_write(engine, other, session, "mine")  # fails: the snapshot is stale
        else:
            session.execute(text("INSERT INTO notes VALUES ('mine')"))
        return "done"

    assert run_unit(sessionmaker(engine), unit) == "done"
    assert len(calls) == 2
    assert _count(engine) == ["mine", "other writer"]  # the first attempt left nothing behind


def test_the_conflict_is_real_without_the_retry(engine: Engine) -> None:
    other = make_engine(str(engine.url))
    with pytest.raises(OperationalError) as info, sessionmaker(engine)() as session:
        _stale_write(engine, other, session, "mine")
    assert is_sqlite_busy(info.value)


def test_other_errors_are_not_retried_and_a_lasting_conflict_gives_up(engine: Engine) -> None:
    calls: list[int] = []

    def broken(session: Session) -> None:
        calls.append(1)
        session.execute(text("INSERT INTO notes VALUES ('x')"))
        raise ValueError("a bug, not a lock")

    with pytest.raises(ValueError):
        run_unit(sessionmaker(engine), broken)
    assert len(calls) == 1 and _count(engine) == []

    other = make_engine(str(engine.url))
    attempts: list[int] = []

    def always_stale(session: Session) -> None:
        attempts.append(1)
        _stale_write(engine, other, session, f"mine {len(attempts)}")

    with pytest.raises(OperationalError):
        run_unit(sessionmaker(engine), always_stale, attempts=3)
    assert len(attempts) == 3
    assert _count(engine) == ["other writer"] * 3  # none of this unit's attempts wrote anything


def test_an_action_handler_that_lost_the_lock_is_not_recorded_as_failed(engine: Engine) -> None:
    def locked(session: Session, request: AlertActionRequest) -> None:
        raise OperationalError("INSERT INTO retrain_jobs ...", {}, sqlite3.OperationalError("database is locked"))

    request = AlertActionRequest(action="conflicted", status="pending", params={})
    register_action_handler("conflicted", locked)
    try:
        with sessionmaker(engine)() as session, pytest.raises(OperationalError):
            handle(session, request)
    finally:
        unregister_action_handler("conflicted")
    assert request.status == "pending" and request.error is None  # run_unit starts the unit again
