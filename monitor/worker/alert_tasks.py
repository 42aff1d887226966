"""Thin Celery tasks of alerting: ids in, one service call, safe to run twice."""

from __future__ import annotations

from datetime import datetime, timedelta

from monitor.db import run_unit, session_factory, utcnow
from monitor.settings import get_settings
from monitor.worker.app import celery_app


@celery_app.task(name="driftloop.alerts.evaluate")
def evaluate_rules_task(project_id: int, window_start: str) -> int:
    """Evaluate a project's rules at one window (queued after that window's metrics committed)."""
    from monitor.alerts.evaluation import evaluate_window

    start = datetime.fromisoformat(window_start)
    return len(run_unit(session_factory(), lambda s: evaluate_window(s, project_id, start)))


@celery_app.task(name="driftloop.webhooks.deliver")
def deliver_webhook_task(delivery_id: int, manual: bool = False) -> str:
    """One attempt; on a retryable failure the next attempt is queued with the backoff as countdown, after
    this attempt's log row committed (so the next task sees it)."""
    from monitor.alerts.delivery import attempt_delivery

    settings = get_settings()
    outcome = run_unit(session_factory(), lambda s: attempt_delivery(s, delivery_id, settings=settings, manual=manual))
    if outcome.retry_in is not None:
        deliver_webhook_task.apply_async(args=[delivery_id], countdown=outcome.retry_in, queue="default")
    return outcome.outcome or outcome.status


@celery_app.task(name="driftloop.webhooks.sweep")
def sweep_webhooks_task() -> int:
    """Beat's safety net: re-queue deliveries whose task was lost (overdue by more than two ticks), and
    handle action requests whose handler has been registered since."""
    from monitor.alerts.actions import run_pending_actions
    from monitor.alerts.dispatch import queue_overdue

    settings = get_settings()
    lag = timedelta(seconds=max(60.0, 2 * settings.tick_seconds))
    ids = run_unit(session_factory(), lambda s: queue_overdue(s, utcnow(), lag=lag))
    for delivery_id in ids:
        deliver_webhook_task.apply_async(args=[delivery_id], queue="default")
    run_unit(session_factory(), lambda s: run_pending_actions(s))
    return len(ids)
