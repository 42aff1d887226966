"""Where the loop meets alerting: events into the webhook outbox, and the `retrain` alert action.

- `emit(session, project_id, type, data)`: stores the event in the caller's transaction (sent after commit)
  through `monitor.webhooks.outbox.emit_event`.
- `install()`: registers the `retrain` action handler, so a firing rule with `actions: [{type: retrain}]`
  creates one job per firing (idempotent on the action request id). Called by the composition root at the
  process entry points (the `driftloop` CLI, Celery worker processes); never at import, so importing
  `retrain` has no effects.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from monitor.alerts.actions import handler_for, register_action_handler, unregister_action_handler
from monitor.encoding import json_safe
from monitor.settings import Settings, get_settings
from monitor.webhooks.outbox import emit_event
from retrain.jobs.service import create_job, dispatch_after_commit, trigger_from_alert

log = logging.getLogger(__name__)
ACTION = "retrain"


def emit(session: Session, project_id: int, event_type: str, data: dict[str, Any]) -> str | None:
    """Queue a webhook event with the caller's transaction; returns its message id."""
    return emit_event(session, project_id, event_type, json_safe(data))


def handle_retrain_action(session: Session, request: Any) -> dict[str, Any]:
    """The `retrain` action handler: one job per action request, queued after the firing commits."""
    job = create_job(session, request.project_id, created_by=f"alert:{request.alert_id}",
                     trigger=trigger_from_alert(session, request), params=dict(request.params or {}),
                     action_request_id=int(request.id))
    dispatch_after_commit(session, job.id)
    return {"job_id": job.id}


def install(settings: Settings | None = None) -> bool:
    """Register the `retrain` action handler (idempotent). False when alerting is not installed or
    `DRIFTLOOP_RETRAIN_ON_ALERT` is off (requests then stay pending, listed by `driftloop alerts actions`)."""
    if not (settings or get_settings()).retrain_on_alert:
        log.info("DRIFTLOOP_RETRAIN_ON_ALERT is off: alert rules' retrain actions stay pending in this process")
        return False
    register_action_handler(ACTION, handle_retrain_action)
    return True


def uninstall() -> None:
    if handler_for(ACTION) is handle_retrain_action:
        unregister_action_handler(ACTION)
