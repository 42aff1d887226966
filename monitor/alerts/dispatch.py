"""Queue after commit, pass ids: sending webhook deliveries and evaluation tasks only once their rows are
committed, in either runner.

- Celery (`runner == "celery"`): one `driftloop.webhooks.deliver` task per delivery id, sent after commit;
  the task queues the next attempt itself with a countdown.
- In-process: the first attempt is made right after commit, in this process. Retries are not slept for:
  they are made when due by `deliver_due`, which the in-process runner calls after each run (and Celery beat
  calls as a safety net for tasks lost with a broker). Tests pass their own clock to `deliver_due`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from monitor.alerts.delivery import AttemptOutcome, Sender, attempt_delivery, due_delivery_ids, send_http
from monitor.db import utcnow
from monitor.settings import Settings, get_settings

log = logging.getLogger(__name__)
_KEY = "driftloop_after_commit"


def _run_after_commit(session: Session) -> None:
    # after_commit also fires when a savepoint commits; only the outermost commit makes rows visible.
    if session.in_nested_transaction():
        return
    callbacks = session.info.pop(_KEY, [])
    for callback in callbacks:
        try:
            callback()
        except Exception:  # the data is committed; a failed send is retried by the due-sweep
            log.exception("after-commit callback failed")


def _discard_on_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost transaction ended without (or after) running them
        session.info.pop(_KEY, None)


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` once the session's current transaction has committed; never if it rolls back.

    A callback registered inside a savepoint that is later rolled back still runs after the outer commit;
    callbacks therefore carry ids and the work they start tolerates ids that no longer exist.
    """
    if _KEY not in session.info:
        session.info[_KEY] = []
        if not event.contains(session, "after_commit", _run_after_commit):
            event.listen(session, "after_commit", _run_after_commit)
            event.listen(session, "after_transaction_end", _discard_on_end)
    session.info[_KEY].append(callback)


def _factory_like(session: Session) -> sessionmaker[Session]:
    # Same engine (or, in tests, the same outer connection) as the session that committed.
    return sessionmaker(bind=session.get_bind(), expire_on_commit=False, join_transaction_mode="create_savepoint")


def schedule_deliveries(session: Session, delivery_ids: list[int], *, settings: Settings | None = None,
                        manual: bool = False) -> None:
    """Send these deliveries after the session commits (see the module docstring)."""
    if not delivery_ids:
        return
    settings = settings or get_settings()
    ids = list(delivery_ids)
    if settings.runner == "celery":
        def queue() -> None:
            from monitor.worker.alert_tasks import deliver_webhook_task

            for delivery_id in ids:
                deliver_webhook_task.apply_async(args=[delivery_id, manual], queue="default")

        after_commit(session, queue)
        return
    factory = _factory_like(session)

    def send_inline() -> None:
        deliver_now(ids, factory=factory, settings=settings, manual=manual)

    after_commit(session, send_inline)


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
