"""Emitting events into the webhook outbox, reading the delivery log, and manual redelivery.

`emit_event` is the one function other parts call (the retraining pipeline emits `retrain.*` and `model.*`
through it). It stores the message and one delivery per receiving endpoint in the caller's transaction;
sending starts after the caller commits.
"""

from __future__ import annotations

import fnmatch
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.db import utcnow
from monitor.encoding import iso
from monitor.errors import ConflictError, NotFoundError
from monitor.settings import Settings
from monitor.webhooks.dispatch import schedule_deliveries
from monitor.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookMessage
from monitor.webhooks.signing import EVENT_TYPES, envelope


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def subscribes(endpoint: WebhookEndpoint, event_type: str) -> bool:
    """An endpoint with no event types receives every type; otherwise names or globs (`alert.*`) select."""
    patterns = endpoint.event_types or []
    return not patterns or any(fnmatch.fnmatchcase(event_type, p) for p in patterns)


def emit_event(
    session: Session, project_id: int, event_type: str, data: dict[str, Any], *,
    endpoint_ids: list[int] | None = None, settings: Settings | None = None,
) -> str:
    """Store one event and its deliveries; returns the message id (the `webhook-id` header).

    Receivers: the given endpoints (alert rules name theirs), else every enabled endpoint of the project
    subscribed to `event_type`. Disabled endpoints receive nothing. The caller commits; sending starts after.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}; known: {', '.join(EVENT_TYPES)}")
    now = utcnow()
    message = WebhookMessage(msg_id=new_message_id(), project_id=project_id, event_type=event_type,
                             payload=envelope(event_type, data, now), created_at=now)
    session.add(message)
    stmt = select(WebhookEndpoint).where(WebhookEndpoint.project_id == project_id,
                                         WebhookEndpoint.enabled.is_(True)).order_by(WebhookEndpoint.id)
    if endpoint_ids is not None:
        stmt = stmt.where(WebhookEndpoint.id.in_(endpoint_ids))
    endpoints = [e for e in session.scalars(stmt) if endpoint_ids is not None or subscribes(e, event_type)]
    session.flush()
    deliveries = [
        WebhookDelivery(project_id=project_id, message_id=message.id, endpoint_id=e.id, status="pending",
                        attempts=0, next_attempt_at=now, created_at=now, updated_at=now)
        for e in endpoints
    ]
    session.add_all(deliveries)
    session.flush()
    schedule_deliveries(session, [d.id for d in deliveries], settings=settings)
    return message.msg_id


def list_deliveries(
    session: Session, project_id: int, *, endpoint: str | None = None, status: str | None = None,
    event_type: str | None = None, limit: int = 100,
) -> list[tuple[WebhookDelivery, WebhookMessage, WebhookEndpoint]]:
    """Newest first."""
    stmt = (
        select(WebhookDelivery, WebhookMessage, WebhookEndpoint)
        .join(WebhookMessage, WebhookMessage.id == WebhookDelivery.message_id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookDelivery.project_id == project_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    if endpoint:
        stmt = stmt.where(WebhookEndpoint.name == endpoint)
    if status:
        stmt = stmt.where(WebhookDelivery.status == status)
    if event_type:
        stmt = stmt.where(WebhookMessage.event_type == event_type)
    return [(d, m, e) for d, m, e in session.execute(stmt).all()]


def attempts_of(session: Session, delivery_ids: list[int]) -> dict[int, list[WebhookAttempt]]:
    out: dict[int, list[WebhookAttempt]] = {i: [] for i in delivery_ids}
    if delivery_ids:
        stmt = select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(delivery_ids)).order_by(
            WebhookAttempt.delivery_id, WebhookAttempt.attempt)
        for a in session.scalars(stmt):
            out[a.delivery_id].append(a)
    return out


def delivery_dict(d: WebhookDelivery, m: WebhookMessage, e: WebhookEndpoint,
                  attempts: list[WebhookAttempt]) -> dict[str, Any]:
    return {
        "id": d.id, "message_id": m.msg_id, "event_type": m.event_type, "endpoint": e.name,
        "status": d.status, "attempts": d.attempts, "next_attempt_at": iso(d.next_attempt_at),
        "last_status_code": d.last_status_code, "last_error": d.last_error, "delivered_at": iso(d.delivered_at),
        "created_at": iso(d.created_at), "payload": m.payload,
        "attempt_log": [
            {"attempt": a.attempt, "trigger": a.trigger, "started_at": iso(a.started_at),
             "status_code": a.status_code, "latency_ms": a.latency_ms, "error": a.error, "outcome": a.outcome}
            for a in attempts
        ],
    }



def get_delivery(session: Session, project_id: int, delivery_id: int) -> WebhookDelivery:
    d = session.get(WebhookDelivery, delivery_id)
    if d is None or d.project_id != project_id:  # another project's delivery is as good as missing
        raise NotFoundError(f"no webhook delivery {delivery_id} in this project")
    return d


def redeliver(session: Session, project_id: int, delivery_id: int, *, settings: Settings | None = None) -> None:
    """Queue one manual attempt of a delivery (any status), sent after commit."""
    d = get_delivery(session, project_id, delivery_id)
    endpoint = session.get(WebhookEndpoint, d.endpoint_id)
    assert endpoint is not None
    if not endpoint.enabled:
        raise ConflictError(f"endpoint {endpoint.name!r} is disabled ({endpoint.disabled_reason or 'by a user'}); "
                            "enable it before redelivering")
    schedule_deliveries(session, [d.id], settings=settings, manual=True)
