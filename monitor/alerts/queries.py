"""Reading alerts back, each with its transitions and the metric values that caused them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from monitor.alerts.models import Alert, AlertActionRequest, AlertTransition
from monitor.alerts.triage import triage_of
from monitor.encoding import iso

ALERT_STATUSES = ("pending", "firing", "resolved", "cancelled")


def list_alerts(session: Session, project_id: int, *, status: str | None = None, rule: str | None = None,
                limit: int = 100, start: datetime | None = None, end: datetime | None = None) -> list[Alert]:
    """Newest first; with `start`/`end`, the alerts whose windows overlap [start, end)."""
    stmt = select(Alert).where(Alert.project_id == project_id).order_by(Alert.id.desc()).limit(limit)
    if start is not None:  # an open alert overlaps every range after it started
        stmt = stmt.where(or_(Alert.last_window >= start, Alert.status.in_(("pending", "firing"))))
    if end is not None:
        stmt = stmt.where(Alert.started_window < end)
    if status:
        stmt = stmt.where(Alert.status == status)
    if rule:
        stmt = stmt.where(Alert.rule_name == rule)
    return list(session.scalars(stmt))


def alert_views(session: Session, alerts: list[Alert]) -> list[dict[str, Any]]:
    ids = [a.id for a in alerts]
    transitions: dict[int, list[AlertTransition]] = {i: [] for i in ids}
    requests: dict[int, list[AlertActionRequest]] = {i: [] for i in ids}
    if ids:
        for t in session.scalars(select(AlertTransition).where(AlertTransition.alert_id.in_(ids))
                                 .order_by(AlertTransition.id)):
            transitions[t.alert_id].append(t)
        for r in session.scalars(select(AlertActionRequest).where(AlertActionRequest.alert_id.in_(ids))
                                 .order_by(AlertActionRequest.id)):
            requests[r.alert_id].append(r)
    triage = triage_of(session, alerts)
    return [
        {
            "id": a.id, "rule": a.rule_name, "rule_id": a.rule_id, "metric": a.metric, "segment": a.segment,
            "severity": a.severity, "status": a.status, "started_window": iso(a.started_window),
            "fired_window": iso(a.fired_window), "ended_window": iso(a.ended_window),
            "last_window": iso(a.last_window), "fired_at": iso(a.fired_at), "ended_at": iso(a.ended_at),
            "transitions": [
                {"id": t.id, "window_start": iso(t.window_start), "from": t.from_status, "to": t.to_status,
                 "streak": t.streak, "reason": t.reason, "evidence": t.evidence, "at": iso(t.created_at)}
                for t in transitions[a.id]
            ],
            "actions": [{"id": r.id, "action": r.action, "status": r.status, "error": r.error}
                        for r in requests[a.id]],
            "acknowledgements": triage[a.id]["acks"],
            "silences": triage[a.id]["silences"],
            "silenced": any(s["active"] for s in triage[a.id]["silences"]),
        }
        for a in alerts
    ]
