"""Alert triage: acknowledge an alert (with a comment), silence a rule or a segment until a time, lift it.

Rows are the audit: who acknowledged or silenced what, when, and why, never deleted (lifting a silence stamps
`lifted_at` / `lifted_by`); they are listed in the alert's history (`alert_views`). Acknowledging sends
`alert.acknowledged`, silencing `alert.silenced`, to the rule's webhook endpoints (or, without a rule or
endpoints, to every endpoint subscribed to the type).

While a silence is active (now < until, not lifted), a matching alert still records its transitions, but
does not page: no webhook on firing or resolving, no action requests (monitor/alerts/evaluation.py). The
silence is by wall-clock time, since an operator silences "for the next two hours", not for window times.
"""

from __future__ import annotations

import fnmatch
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from monitor.alerts.models import Alert, AlertAck, AlertRule, AlertSilence
from monitor.alerts.rule_service import get_rule
from monitor.db import utcnow
from monitor.encoding import iso
from monitor.errors import ConflictError, FieldError, NotFoundError
from monitor.models import Project
from monitor.settings import Settings
from monitor.webhooks.models import WebhookEndpoint
from monitor.webhooks.outbox import emit_event

MAX_COMMENT = 2000


def _endpoint_ids(session: Session, rule: AlertRule | None) -> list[int] | None:
    names = [n for a in (rule.actions if rule else []) if a.get("type") == "webhook" for n in a.get("endpoints", [])]
    if not names or rule is None:
        return None  # every endpoint subscribed to the event type
    return list(session.scalars(select(WebhookEndpoint.id).where(
        WebhookEndpoint.project_id == rule.project_id, WebhookEndpoint.name.in_(names))))


def get_alert(session: Session, project_id: int, alert_id: int) -> Alert:
    alert = session.scalar(select(Alert).where(Alert.project_id == project_id, Alert.id == alert_id))
    if alert is None:
        raise NotFoundError(f"no alert {alert_id} in this project")
    return alert


def acknowledge(session: Session, project: Project, alert_id: int, *, actor: str, comment: str = "",
                settings: Settings | None = None) -> AlertAck:
    """Record the acknowledgement and queue `alert.acknowledged`. The caller commits."""
    alert = get_alert(session, project.id, alert_id)
    if alert.status in ("resolved", "cancelled"):
        raise ConflictError(f"alert {alert_id} is {alert.status}: there is nothing to acknowledge")
    ack = AlertAck(project_id=project.id, alert_id=alert.id, actor=actor[:128], comment=comment[:MAX_COMMENT],
                   created_at=utcnow())
    session.add(ack)
    session.flush()
    rule = session.get(AlertRule, alert.rule_id)
    emit_event(session, project.id, "alert.acknowledged", {
        "project": project.slug,
        "alert": {"id": alert.id, "rule": alert.rule_name, "rule_id": alert.rule_id, "severity": alert.severity,
                  "status": alert.status, "metric": alert.metric, "segment": alert.segment},
        "acknowledgement": ack_dict(ack),
    }, endpoint_ids=_endpoint_ids(session, rule), settings=settings)
    return ack


def silence(session: Session, project: Project, *, rule: str | None, segment: str = "*", until: datetime,
            actor: str, comment: str = "", settings: Settings | None = None) -> AlertSilence:
    """Silence one rule (by name) or every rule, on segments matching a glob, until `until`. Caller commits."""
    now = utcnow()
    if until <= now:
        raise FieldError("until", f"must be in the future (now is {now.isoformat()})")
    if not segment or len(segment) > 320:
        raise FieldError("segment", "a segment label or glob (`*` for every segment), at most 320 characters")
    if rule is None and segment == "*":
        raise FieldError("rule", "name a rule or a segment: silencing every rule on every segment is refused")
    row = get_rule(session, project.id, rule) if rule else None
    sil = AlertSilence(project_id=project.id, rule_id=row.id if row else None, segment=segment, until=until,
                       comment=comment[:MAX_COMMENT], actor=actor[:128], created_at=now)
    session.add(sil)
    session.flush()
    emit_event(session, project.id, "alert.silenced", {"project": project.slug,
                                                       "silence": silence_dict(sil, row.name if row else None)},
               endpoint_ids=_endpoint_ids(session, row), settings=settings)
    return sil


def lift(session: Session, project: Project, silence_id: int, *, actor: str) -> AlertSilence:
    sil = session.scalar(select(AlertSilence).where(AlertSilence.project_id == project.id,
                                                    AlertSilence.id == silence_id))
    if sil is None:
        raise NotFoundError(f"no silence {silence_id} in this project")
    if sil.lifted_at is not None:
        raise ConflictError(f"silence {silence_id} was already lifted by {sil.lifted_by}")
    sil.lifted_at, sil.lifted_by = utcnow(), actor[:128]
    session.flush()
    return sil


def active_silences(session: Session, project_id: int, now: datetime | None = None) -> list[AlertSilence]:
    now = now or utcnow()
    return list(session.scalars(select(AlertSilence).where(
        AlertSilence.project_id == project_id, AlertSilence.until > now, AlertSilence.lifted_at.is_(None))
        .order_by(AlertSilence.id)))


def silence_for(session: Session, rule: AlertRule, segment: str, now: datetime | None = None) -> AlertSilence | None:
    """The active silence covering this rule and segment, if any."""
    for sil in active_silences(session, rule.project_id, now):
        if (sil.rule_id is None or sil.rule_id == rule.id) and fnmatch.fnmatchcase(segment, sil.segment):
            return sil
    return None


def list_silences(session: Session, project_id: int, *, active_only: bool = False,
                  limit: int = 200) -> list[AlertSilence]:
    stmt = select(AlertSilence).where(AlertSilence.project_id == project_id)
    if active_only:
        stmt = stmt.where(AlertSilence.until > utcnow(), AlertSilence.lifted_at.is_(None))
    return list(session.scalars(stmt.order_by(AlertSilence.id.desc()).limit(limit)))


def rule_names(session: Session, project_id: int) -> dict[int, str]:
    rows = session.execute(select(AlertRule.id, AlertRule.name).where(AlertRule.project_id == project_id))
    return {int(rid): str(name) for rid, name in rows}


def ack_dict(a: AlertAck) -> dict[str, Any]:
    return {"id": a.id, "alert_id": a.alert_id, "actor": a.actor, "comment": a.comment, "at": iso(a.created_at)}


def silence_dict(s: AlertSilence, rule: str | None, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    return {"id": s.id, "rule": rule, "rule_id": s.rule_id, "segment": s.segment, "until": iso(s.until),
            "comment": s.comment, "actor": s.actor, "created_at": iso(s.created_at), "lifted_at": iso(s.lifted_at),
            "lifted_by": s.lifted_by, "active": s.lifted_at is None and s.until > now}


def triage_of(session: Session, alerts: list[Alert]) -> dict[int, dict[str, Any]]:
    """Per alert: its acknowledgements, and the silences that covered its rule and segment (active or not)."""
    if not alerts:
        return {}
    ids = [a.id for a in alerts]
    acks: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for ack in session.scalars(select(AlertAck).where(AlertAck.alert_id.in_(ids)).order_by(AlertAck.id)):
        acks[ack.alert_id].append(ack_dict(ack))
    project_ids = {a.project_id for a in alerts}
    rule_ids = {a.rule_id for a in alerts}
    silences = list(session.scalars(select(AlertSilence).where(
        AlertSilence.project_id.in_(project_ids),
        or_(AlertSilence.rule_id.is_(None), AlertSilence.rule_id.in_(rule_ids))).order_by(AlertSilence.id)))
    names: dict[int, str] = {}
    for pid in project_ids:
        names.update(rule_names(session, pid))
    now = utcnow()
    return {a.id: {"acks": acks[a.id], "silences": [
        silence_dict(s, names.get(s.rule_id) if s.rule_id else None, now) for s in silences
        if s.project_id == a.project_id and (s.rule_id is None or s.rule_id == a.rule_id)
        and fnmatch.fnmatchcase(a.segment, s.segment)]} for a in alerts}
