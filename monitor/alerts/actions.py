"""Actions a firing alert asks for besides webhooks (today: `retrain`), by name.

`monitor` never imports `retrain`: a firing records an action request row (unique per transition and
action, so one firing asks exactly once), and a handler registered under the action's name handles it. The
retraining pipeline registers its `retrain` handler at its entry points; until a handler is registered,
requests stay `pending` and are listed (and `run_pending_actions` picks them up later).

A handler runs inside the evaluating transaction, in a savepoint: the job row it creates commits together
with the alert transition, or neither does. Work that must wait for the commit (queueing a Celery task)
goes through the queue seam, `monitor.queue.enqueue`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.alerts.models import AlertActionRequest
from monitor.db import is_sqlite_busy, utcnow

log = logging.getLogger(__name__)

ActionHandler = Callable[[Session, AlertActionRequest], dict[str, Any] | None]
_HANDLERS: dict[str, ActionHandler] = {}


def register_action_handler(action: str, handler: ActionHandler) -> ActionHandler:
    """Handle requests for `action` from now on (replaces an earlier handler of the same name)."""
    _HANDLERS[action] = handler
    return handler


def unregister_action_handler(action: str) -> None:
    _HANDLERS.pop(action, None)


def handler_for(action: str) -> ActionHandler | None:
    return _HANDLERS.get(action)


def request_action(
    session: Session, *, project_id: int, alert_id: int, transition_id: int, action: str, params: dict[str, Any]
) -> AlertActionRequest:
    """Record the request and hand it to its handler if one is registered. The caller commits."""
    now = utcnow()
    request = AlertActionRequest(project_id=project_id, alert_id=alert_id, transition_id=transition_id,
                                 action=action, params=params, status="pending", created_at=now, updated_at=now)
    session.add(request)
    session.flush()
    handle(session, request)
    return request


def handle(session: Session, request: AlertActionRequest) -> bool:
    """Run the registered handler on a pending request; False when no handler is registered."""
    handler = _HANDLERS.get(request.action)
    if handler is None or request.status != "pending":
        return False
    try:
        with session.begin_nested():
            result = handler(session, request)
        request.status, request.result, request.error = "done", result or {}, None
    except Exception as exc:  # a broken handler must not undo the alert transition that asked for it
        if is_sqlite_busy(exc):
            raise  # not the handler's fault: the whole unit must start again in a new transaction (run_unit)
        log.exception("action %s for request %s failed", request.action, request.id)
        request.status, request.error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
    request.updated_at = utcnow()
    session.flush()
    return True


def run_pending_actions(session: Session, project_id: int | None = None, limit: int = 100) -> int:
    """Handle pending requests whose action now has a handler; returns how many were handled."""
    if not _HANDLERS:
        return 0
    stmt = (select(AlertActionRequest)
            .where(AlertActionRequest.status == "pending", AlertActionRequest.action.in_(list(_HANDLERS)))
            .order_by(AlertActionRequest.id).limit(limit))
    if project_id is not None:
        stmt = stmt.where(AlertActionRequest.project_id == project_id)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)  # two sweepers never handle the same request
    return sum(handle(session, r) for r in session.scalars(stmt).all())


def list_action_requests(session: Session, project_id: int, *, status: str | None = None,
                         limit: int = 100) -> list[AlertActionRequest]:
    stmt = (select(AlertActionRequest).where(AlertActionRequest.project_id == project_id)
            .order_by(AlertActionRequest.id.desc()).limit(limit))
    if status:
        stmt = stmt.where(AlertActionRequest.status == status)
    return list(session.scalars(stmt))


def action_request_dict(r: AlertActionRequest) -> dict[str, Any]:
    return {"id": r.id, "alert_id": r.alert_id, "transition_id": r.transition_id, "action": r.action,
            "params": r.params, "status": r.status, "result": r.result, "error": r.error,
            "created_at": r.created_at.isoformat(), "updated_at": r.updated_at.isoformat()}
