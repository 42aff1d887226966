"""Wiring alerting into the metrics runner (registration by import; the runner imports this module).

After a window's metrics commit, its rules are evaluated:
- in-process: right here, inside the transaction that marks the window computed (in a savepoint, so a
  broken rule is logged instead of keeping the window dirty forever); webhooks go out after that commit;
- Celery: `driftloop.alerts.evaluate(project_id, window_start)` is queued *after* that commit, by id, so the
  task always sees the committed metric rows.
After each in-process run, webhook retries that have come due are attempted and pending action requests
whose handler has since been registered are handled.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from monitor.alerts.actions import run_pending_actions
from monitor.alerts.dispatch import after_commit, deliver_due
from monitor.alerts.evaluation import evaluate_window
from monitor.runner import on_run_finished, on_window_computed
from monitor.settings import get_settings

log = logging.getLogger(__name__)


@on_window_computed
def evaluate_after_window(session: Session, project_id: int, window_start: datetime) -> None:
    settings = get_settings()
    if settings.runner == "celery":
        def queue() -> None:
            from monitor.worker.alert_tasks import evaluate_rules_task

            evaluate_rules_task.apply_async(args=[project_id, window_start.isoformat()], queue="default")

        after_commit(session, queue)
        return
    try:
        with session.begin_nested():
            evaluate_window(session, project_id, window_start, settings=settings)
    except Exception:
        log.exception("alert evaluation of project %s window %s failed", project_id, window_start)


@on_run_finished
def deliver_due_webhooks(factory: sessionmaker[Session], now: datetime) -> None:
    deliver_due(factory=factory, now=now)
    with factory() as session:
        if run_pending_actions(session):
            session.commit()
