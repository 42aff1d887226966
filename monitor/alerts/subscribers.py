"""Alerting's subscribers to the metrics runner (wired by the composition root, `monitor.composition`).

After a window's metrics commit, its rules are evaluated by `driftloop.alerts.evaluate(project_id,
window_start)`, queued through the queue seam *after* that commit, by id, so the evaluation always sees the
committed metric rows (a Celery task, or in-process right after the commit; a broken rule is logged there and
the window stays computed). After each in-process run, webhook retries that have come due are attempted and
pending action requests whose handler has since been registered are handled.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from monitor.alerts.actions import run_pending_actions
from monitor.queue import enqueue
from monitor.webhooks.dispatch import deliver_due

EVALUATE_TASK = "driftloop.alerts.evaluate"


def evaluate_after_window(session: Session, project_id: int, window_start: datetime) -> None:
    enqueue(session, EVALUATE_TASK, project_id, window_start.isoformat())


def deliver_due_webhooks(factory: sessionmaker[Session], now: datetime) -> None:
    deliver_due(factory=factory, now=now)
    with factory() as session:
        if run_pending_actions(session):
            session.commit()
