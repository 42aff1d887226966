"""Token budgets that hold across windows and processes.

Before a call the judge *reserves* an estimate (prompt characters / 4 + max_tokens) with one conditional
UPDATE (``tokens + n <= limit``), so concurrent workers sharing a budget cannot overshoot it; after the call it
*settles* the difference with what the server reported. The ledger commits in a short transaction of its own:
tokens spent on a window that later rolls back were still paid for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from monitor.db import utcnow
from monitor.evaluators.judge.models import JudgeSpend


class SpendLedger(Protocol):
    limit: int | None

    def reserve(self, tokens: int) -> bool: ...  # False: the budget would be exceeded; nothing reserved

    def settle(self, reserved: int, actual: int) -> None: ...

    def spent(self) -> int: ...


def utc_day(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d")


class MemoryLedger:
    """One process's budget (benchmarks, and judges run without a database)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._spent = 0
        self.calls = 0

    def reserve(self, tokens: int) -> bool:
        if self.limit is not None and self._spent + tokens > self.limit:
            return False
        self._spent += tokens
        self.calls += 1
        return True

    def settle(self, reserved: int, actual: int) -> None:
        self._spent += actual - reserved

    def spent(self) -> int:
        return self._spent


class SqlLedger:
    """The ``judge_spend`` row of (project, evaluator, UTC day)."""

    def __init__(self, factory: sessionmaker[Session], project_id: int, evaluator: str, limit: int | None, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.factory = factory
        self.project_id = project_id
        self.evaluator = evaluator
        self.limit = limit
        self.clock = clock
        self._session: Session | None = None

    @classmethod
    def in_session(cls, session: Session, project_id: int, evaluator: str, limit: int | None) -> SqlLedger:
        """A ledger writing through ``session`` (savepoints): it commits with the caller's transaction."""
        ledger = cls(sessionmaker(), project_id, evaluator, limit)
        ledger._session = session
        return ledger

    @contextmanager
    def _unit(self) -> Iterator[Session]:
        if self._session is not None:
            with self._session.begin_nested():
                yield self._session
        else:
            with self.factory() as session, session.begin():
                yield session

    def _key(self) -> tuple[int, str, str]:
        return self.project_id, self.evaluator, utc_day(self.clock())

    def _ensure_row(self, session: Session, key: tuple[int, str, str]) -> None:
        exists = session.scalar(select(JudgeSpend.id).where(
            JudgeSpend.project_id == key[0], JudgeSpend.evaluator == key[1], JudgeSpend.period == key[2]))
        if exists is None:
            try:
                with session.begin_nested():
                    session.add(JudgeSpend(project_id=key[0], evaluator=key[1], period=key[2], tokens=0, calls=0))
            except IntegrityError:  # another worker created it first: fine
                pass

    def reserve(self, tokens: int) -> bool:
        key = self._key()
        with self._unit() as session:
            self._ensure_row(session, key)
            stmt = update(JudgeSpend).where(
                JudgeSpend.project_id == key[0], JudgeSpend.evaluator == key[1], JudgeSpend.period == key[2])
            if self.limit is not None:
                stmt = stmt.where(JudgeSpend.tokens + tokens <= self.limit)
            result = session.execute(stmt.values(tokens=JudgeSpend.tokens + tokens, calls=JudgeSpend.calls + 1,
                                                 updated_at=utcnow()))
            return bool(getattr(result, "rowcount", 0))

    def settle(self, reserved: int, actual: int) -> None:
        if actual == reserved:
            return
        key = self._key()
        with self._unit() as session:
            session.execute(update(JudgeSpend).where(
                JudgeSpend.project_id == key[0], JudgeSpend.evaluator == key[1], JudgeSpend.period == key[2])
                .values(tokens=JudgeSpend.tokens + (actual - reserved), updated_at=utcnow()))

    def spent(self) -> int:
        key = self._key()
        with self._unit() as session:
            return int(session.scalar(select(JudgeSpend.tokens).where(
                JudgeSpend.project_id == key[0], JudgeSpend.evaluator == key[1], JudgeSpend.period == key[2])) or 0)
