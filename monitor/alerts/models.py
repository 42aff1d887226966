"""Tables of alerting: rules, alerts and their transitions, action requests (the webhook outbox's tables are
in `monitor.webhooks.models`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from monitor.db import UTCDateTime, utcnow
from monitor.models import Base, BigId, JsonDoc


class AlertRule(Base):
    """One rule of a project; the columns mirror `monitor.alerts.rules.RuleSpec`."""

    __tablename__ = "alert_rules"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_alert_rules_project_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(1000), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    metric: Mapped[str] = mapped_column(String(96))
    field: Mapped[str] = mapped_column(String(16))  # value | p_value | flagged
    comparator: Mapped[str] = mapped_column(String(2))
    threshold: Mapped[float] = mapped_column(Float)
    segment: Mapped[str] = mapped_column(String(320))  # exact label or a glob such as model_version=*
    for_windows: Mapped[int] = mapped_column(Integer)
    cooldown_seconds: Mapped[int] = mapped_column(Integer)
    severity: Mapped[str] = mapped_column(String(16))
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Alert(Base):
    """One episode of a rule on one segment: pending → firing → resolved (or pending → cancelled)."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_project_status", "project_id", "status"),
        Index("ix_alerts_rule_segment", "rule_id", "segment"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rules.id", ondelete="CASCADE"))
    rule_name: Mapped[str] = mapped_column(String(64))
    metric: Mapped[str] = mapped_column(String(96))
    segment: Mapped[str] = mapped_column(String(320))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))  # pending | firing | resolved | cancelled
    started_window: Mapped[datetime] = mapped_column(UTCDateTime())
    fired_window: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_window: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_window: Mapped[datetime] = mapped_column(UTCDateTime())
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AlertTransition(Base):
    """A status change, with the metric rows that caused it.

    The unique key makes evaluation idempotent: evaluating the same window twice cannot record the same
    change twice, even when two workers race (the loser's insert fails and its savepoint is rolled back).
    """

    __tablename__ = "alert_transitions"
    __table_args__ = (
        UniqueConstraint("rule_id", "segment", "window_start", "to_status", name="uq_alert_transitions_key"),
        Index("ix_alert_transitions_alert", "alert_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(BigId, ForeignKey("alerts.id", ondelete="CASCADE"))
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rules.id", ondelete="CASCADE"))
    segment: Mapped[str] = mapped_column(String(320))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    from_status: Mapped[str] = mapped_column(String(16))  # inactive | pending | firing
    to_status: Mapped[str] = mapped_column(String(16))
    streak: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(500))
    evidence: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AlertActionRequest(Base):
    """A non-webhook action a firing asked for (e.g. `retrain`), handled by a registered handler.

    Unique per (transition, action): one firing asks once, however often its window is evaluated.
    """

    __tablename__ = "alert_action_requests"
    __table_args__ = (
        UniqueConstraint("transition_id", "action", name="uq_alert_action_requests_key"),
        Index("ix_alert_action_requests_project_status", "project_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    alert_id: Mapped[int] = mapped_column(BigId, ForeignKey("alerts.id", ondelete="CASCADE"))
    transition_id: Mapped[int] = mapped_column(BigId, ForeignKey("alert_transitions.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    status: Mapped[str] = mapped_column(String(16))  # pending | done | failed
    result: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AlertAck(Base):
    """An operator (or API key) acknowledged an alert, with a comment: part of the alert's history (audit)."""

    __tablename__ = "alert_acks"
    __table_args__ = (Index("ix_alert_acks_alert", "alert_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    alert_id: Mapped[int] = mapped_column(BigId, ForeignKey("alerts.id", ondelete="CASCADE"))
    actor: Mapped[str] = mapped_column(String(128))
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AlertSilence(Base):
    """While active (`until` in the future, not lifted), matching alerts do not page: no webhooks, no actions.

    Matches a rule (by id; None: every rule) on segments matching a glob (`*`: every segment). Rows are never
    deleted: lifting sets `lifted_at`/`lifted_by`, so the history of who silenced what stays (audit).
    """

    __tablename__ = "alert_silences"
    __table_args__ = (Index("ix_alert_silences_project_until", "project_id", "until"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("alert_rules.id", ondelete="CASCADE"), nullable=True)
    segment: Mapped[str] = mapped_column(String(320))
    until: Mapped[datetime] = mapped_column(UTCDateTime())
    comment: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lifted_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
