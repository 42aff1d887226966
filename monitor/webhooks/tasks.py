"""Thin Celery tasks of the webhook outbox: ids in, one service call, safe to run twice."""

from __future__ import annotations

from datetime import timedelta

from monitor.alerts.actions import run_pending_actions
from monitor.db import run_unit, session_factory, utcnow
from monitor.settings import get_settings
from monitor.webhooks.dispatch import DELIVER_TASK, deliver_job, queue_overdue
from monitor.worker.app import celery_app


@celery_app.task(name=DELIVER_TASK)
def deliver_webhook_task(delivery_id: int, manual: bool = False) -> str:
    """One attempt; on a retryable failure the next attempt is queued with the backoff as countdown, after
    this attempt's log row committed (so the next task sees it)."""
    outcome = deliver_job(session_factory(), get_settings(), delivery_id, manual)
    if outcome.retry_in is not None:
        deliver_webhook_task.apply_async(args=[delivery_id], countdown=outcome.retry_in, queue="default")
    return outcome.outcome or outcome.status


@celery_app.task(name="driftloop.webhooks.sweep")
def sweep_webhooks_task() -> int:
    """Beat's safety net: re-queue deliveries whose task was lost (overdue by more than two ticks), and
    handle action requests whose handler has been registered since."""
    settings = get_settings()
    lag = timedelta(seconds=max(60.0, 2 * settings.tick_seconds))
    ids = run_unit(session_factory(), lambda s: queue_overdue(s, utcnow(), lag=lag))
    for delivery_id in ids:
        deliver_webhook_task.apply_async(args=[delivery_id], queue="default")
    run_unit(session_factory(), lambda s: run_pending_actions(s))
    return len(ids)
