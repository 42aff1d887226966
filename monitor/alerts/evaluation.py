"""Evaluating a project's rules after one window's metrics are committed: load rows and state, `decide`,
store the transition with its evidence, and on firing/resolving emit webhooks and request actions.

Idempotent: evaluating the same window again changes nothing (the state machine sees its own earlier
result), and the unique key on transitions stops two concurrent evaluations from both recording a change.
On Postgres the project's rules are locked for the evaluation, so evaluations of neighbouring windows of
one project run one after the other and see each other's alerts.
"""

from __future__ import annotations

import fnmatch
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerts.actions import request_action
from monitor.alerts.models import Alert, AlertRule, AlertTransition
from monitor.alerts.state import AlertState, Condition, Decision, Point, RuleParams, decide
from monitor.alerts.triage import silence_for
from monitor.db import run_unit, utcnow
from monitor.models import Project
from monitor.pipeline.models import MetricValue
from monitor.settings import Settings
from monitor.webhooks.models import WebhookEndpoint
from monitor.webhooks.outbox import emit_event

log = logging.getLogger(__name__)
OPEN = ("pending", "firing")


def rule_params(rule: AlertRule) -> RuleParams:
    return RuleParams(Condition(rule.field, rule.comparator, rule.threshold),  # type: ignore[arg-type]
                      rule.for_windows, timedelta(seconds=rule.cooldown_seconds))


def _point(r: MetricValue) -> Point:
    return Point(r.window_start, r.status, r.n, r.value, r.p_value, r.flagged, r.threshold)


def _segments(session: Session, rule: AlertRule, window_start: datetime) -> list[str]:
    labels = session.scalars(select(MetricValue.segment).where(
        MetricValue.project_id == rule.project_id, MetricValue.metric == rule.metric,
        MetricValue.window_start == window_start))
    return sorted(s for s in labels if fnmatch.fnmatchcase(s, rule.segment))


def _history(session: Session, rule: AlertRule, segment: str, window_start: datetime) -> list[Point]:
    """The row at the window, and the `for_windows` newest `ok` rows before it (enough to count a streak)."""
    base = select(MetricValue).where(MetricValue.project_id == rule.project_id, MetricValue.metric == rule.metric,
                                     MetricValue.segment == segment)
    current = session.scalars(base.where(MetricValue.window_start == window_start)).all()
    earlier = session.scalars(base.where(MetricValue.window_start < window_start, MetricValue.status == "ok")
                              .order_by(MetricValue.window_start.desc()).limit(rule.for_windows)).all()
    return [_point(r) for r in (*earlier, *current)]


def _state(session: Session, rule: AlertRule, segment: str) -> tuple[AlertState, Alert | None]:
    alert = session.scalar(select(Alert).where(Alert.rule_id == rule.id, Alert.segment == segment,
                                               Alert.status.in_(OPEN)).order_by(Alert.id.desc()).limit(1))
    last_change = session.scalar(select(func.max(AlertTransition.window_start)).where(
        AlertTransition.rule_id == rule.id, AlertTransition.segment == segment))
    last_fired = session.scalar(select(func.max(Alert.fired_window)).where(
        Alert.rule_id == rule.id, Alert.segment == segment))
    status = alert.status if alert is not None else "inactive"
    return AlertState(status, _aware(last_change), _aware(last_fired)), alert  # type: ignore[arg-type]


def _aware(ts: datetime | None) -> datetime | None:
    # Aggregates bypass the column type on SQLite, which hands back naive (UTC) datetimes.
    from datetime import UTC

    return ts.replace(tzinfo=UTC) if ts is not None and ts.tzinfo is None else ts


def _apply(session: Session, rule: AlertRule, segment: str, alert: Alert | None, d: Decision,
           now: datetime) -> tuple[Alert, AlertTransition]:
    assert d.to_status is not None
    if alert is None:
        alert = Alert(project_id=rule.project_id, rule_id=rule.id, rule_name=rule.name, metric=rule.metric,
                      segment=segment, severity=rule.severity, status=d.to_status, started_window=d.window_start,
                      last_window=d.window_start, created_at=now)
        session.add(alert)
    alert.status, alert.last_window, alert.updated_at = d.to_status, d.window_start, now
    alert.severity = rule.severity
    if d.to_status == "firing":
        alert.fired_window, alert.fired_at = d.window_start, now
    elif d.to_status in ("resolved", "cancelled"):
        alert.ended_window, alert.ended_at = d.window_start, now
    session.flush()
    transition = AlertTransition(
        alert_id=alert.id, rule_id=rule.id, segment=segment, window_start=d.window_start, from_status=d.from_status,
        to_status=d.to_status, streak=d.streak, reason=d.reason[:500], evidence=[p.to_dict() for p in d.evidence],
        created_at=now,
    )
    session.add(transition)
    session.flush()
    return alert, transition


def alert_payload(project: Project, rule: AlertRule, alert: Alert, t: AlertTransition) -> dict[str, Any]:
    newest = t.evidence[-1] if t.evidence else {}
    observed = newest.get(rule.field) if isinstance(newest, dict) else None
    return {
        "project": project.slug,
        "alert": {"id": alert.id, "rule": rule.name, "rule_id": rule.id, "severity": rule.severity,
                  "status": alert.status, "metric": rule.metric, "segment": alert.segment,
                  "started_window": alert.started_window.isoformat(),
                  "fired_window": alert.fired_window.isoformat() if alert.fired_window else None},
        "condition": {"field": rule.field, "comparator": rule.comparator, "threshold": rule.threshold,
                      "for_windows": rule.for_windows, "cooldown_seconds": rule.cooldown_seconds},
        "transition": {"id": t.id, "from": t.from_status, "to": t.to_status, "reason": t.reason},
        "window_start": t.window_start.isoformat(),
        "observed": observed,
        "evidence": t.evidence,
        "description": rule.description,
    }


def _endpoint_ids(session: Session, rule: AlertRule) -> list[int]:
    names = [n for a in rule.actions if a.get("type") == "webhook" for n in a.get("endpoints", [])]
    if not names:
        return []
    return list(session.scalars(select(WebhookEndpoint.id).where(
        WebhookEndpoint.project_id == rule.project_id, WebhookEndpoint.name.in_(names))))


def _side_effects(session: Session, project: Project, rule: AlertRule, alert: Alert, t: AlertTransition,
                  settings: Settings | None) -> None:
    if t.to_status not in ("firing", "resolved"):
        return
    silenced = silence_for(session, rule, alert.segment)
    if silenced is not None:  # recorded in the history, but it does not page (monitor/alerts/triage.py)
        t.reason = f"{t.reason} [silenced by silence {silenced.id} until {silenced.until.isoformat()}: no page]"[:500]
        return
    ids = _endpoint_ids(session, rule)
    if ids:
        emit_event(session, rule.project_id, f"alert.{t.to_status}", alert_payload(project, rule, alert, t),
                   endpoint_ids=ids, settings=settings)
    if t.to_status == "firing":
        for action in rule.actions:
            if action.get("type") != "webhook":
                request_action(session, project_id=rule.project_id, alert_id=alert.id, transition_id=t.id,
                               action=str(action["type"]), params=dict(action.get("params") or {}))


def evaluate_window(session: Session, project_id: int, window_start: datetime, *,
                    settings: Settings | None = None) -> list[AlertTransition]:
    """Evaluate every enabled rule of the project at this window; returns the transitions recorded."""
    project = session.get(Project, project_id)
    if project is None:
        return []
    stmt = select(AlertRule).where(AlertRule.project_id == project_id, AlertRule.enabled.is_(True)).order_by(
        AlertRule.id)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    now = utcnow()
    recorded = []
    for rule in session.scalars(stmt).all():
        params = rule_params(rule)
        for segment in _segments(session, rule, window_start):
            state, alert = _state(session, rule, segment)
            decision = decide(params, state, _history(session, rule, segment, window_start), window_start)
            if not decision.changed:
                continue
            try:
                with session.begin_nested():
                    alert, transition = _apply(session, rule, segment, alert, decision, now)
                    _side_effects(session, project, rule, alert, transition, settings)
            except IntegrityError:  # another evaluation recorded this change first
                log.info("rule %s segment %s window %s: already evaluated", rule.id, segment, window_start)
                continue
            recorded.append(transition)
    return recorded


def evaluate_job(factory: sessionmaker[Session], settings: Settings, project_id: int, window_start: str) -> int:
    """The `driftloop.alerts.evaluate` task's body (Celery and inline): one committed evaluation."""
    start = datetime.fromisoformat(window_start)
    return len(run_unit(factory, lambda s: evaluate_window(s, project_id, start, settings=settings)))
