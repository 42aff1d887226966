"""Sending webhook deliveries, only once their rows are committed, in either runner.

- `schedule_deliveries` queues one `driftloop.webhooks.deliver` per delivery id through the queue seam
  (`monitor.queue.enqueue`): a Celery task after commit, or, in-process, the first attempt right after commit.
  The Celery task queues the next attempt itself with a countdown.
- In-process retries are not slept for: they are made when due by `deliver_due`, which the in-process runner
  calls after each run (and Celery beat calls as a safety net for tasks lost with a broker). Tests pass their own
  clock to `deliver_due`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from monitor.db import run_unit, utcnow
from monitor.queue import enqueue
from monitor.settings import Settings, get_settings
from monitor.webhooks.delivery import AttemptOutcome, Sender, attempt_delivery, due_delivery_ids, send_http

log = logging.getLogger(__name__)
DELIVER_TASK = "driftloop.webhooks.deliver"


def schedule_deliveries(session: Session, delivery_ids: list[int], *, settings: Settings | None = None,
                        manual: bool = False) -> None:
    """Send these deliveries after the session commits (see the module docstring)."""
    for delivery_id in delivery_ids:
        enqueue(session, DELIVER_TASK, delivery_id, manual, settings=settings)


def deliver_job(factory: sessionmaker[Session], settings: Settings, delivery_id: int,
                manual: bool = False) -> AttemptOutcome:
    """The `driftloop.webhooks.deliver` task's body (Celery and inline): one attempt, committed."""
    return run_unit(factory, lambda s: attempt_delivery(s, delivery_id, settings=settings, manual=manual))


def _one(factory: sessionmaker[Session], delivery_id: int, settings: Settings, due_by: datetime | None,
         send: Sender, manual: bool) -> AttemptOutcome:
    with factory() as session:
        try:
            outcome = attempt_delivery(session, delivery_id, settings=settings, send=send, manual=manual,
                                       due_by=due_by)
            session.commit()
            return outcome
        except BaseException:
            session.rollback()
            raise


def deliver_now(delivery_ids: list[int], *, factory: sessionmaker[Session], settings: Settings | None = None,
                due_by: datetime | None = None, send: Sender = send_http,
                manual: bool = False) -> list[AttemptOutcome]:
    """One attempt per delivery (if due by `due_by`, default now), each in its own committed transaction."""
    settings = settings or get_settings()
    return [_one(factory, i, settings, due_by, send, manual) for i in delivery_ids]


def deliver_due(*, factory: sessionmaker[Session], settings: Settings | None = None, now: datetime | None = None,
                send: Sender = send_http, limit: int = 500) -> list[AttemptOutcome]:
    """Attempt every delivery whose retry time has come by `now` (a test may pass a clock of its own; the
    attempts themselves are made, signed and logged at the real time)."""
    now = now or utcnow()
    with factory() as session:
        ids = due_delivery_ids(session, now, limit=limit)
    return deliver_now(ids, factory=factory, settings=settings, due_by=now, send=send)


def queue_overdue(session: Session, now: datetime, *, lag: timedelta) -> list[int]:
    """Celery safety net: ids of deliveries overdue by more than `lag` (their task was lost); queue them."""
    return due_delivery_ids(session, now, older_than=lag)
