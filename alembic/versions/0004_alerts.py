"""Alerting: rules, alerts, transitions, action requests, webhook endpoints and the webhook outbox.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JsonDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Ts = sa.DateTime(timezone=True)


def _project() -> sa.Column:
    return sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.Integer(), primary_key=True),
        _project(),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.String(1000), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("metric", sa.String(96), nullable=False),
        sa.Column("field", sa.String(16), nullable=False),
        sa.Column("comparator", sa.String(2), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("segment", sa.String(320), nullable=False),
        sa.Column("for_windows", sa.Integer(), nullable=False),
        sa.Column("cooldown_seconds", sa.Integer(), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("actions", JsonDoc, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
        sa.UniqueConstraint("project_id", "name", name="uq_alert_rules_project_name"),
    )
    op.create_table(
        "alerts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        _project(),
        sa.Column("rule_id", sa.Integer(), sa.ForeignKey("alert_rules.id", ondelete="CASCADE"), nullable=False),
        sa.Column("rule_name", sa.String(64), nullable=False),
        sa.Column("metric", sa.String(96), nullable=False),
        sa.Column("segment", sa.String(320), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_window", Ts, nullable=False),
        sa.Column("fired_window", Ts),
        sa.Column("ended_window", Ts),
        sa.Column("last_window", Ts, nullable=False),
        sa.Column("fired_at", Ts),
        sa.Column("ended_at", Ts),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
    )
    op.create_index("ix_alerts_project_status", "alerts", ["project_id", "status"])
    op.create_index("ix_alerts_rule_segment", "alerts", ["rule_id", "segment"])
    op.create_table(
        "alert_transitions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("alert_id", BigId, sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("rule_id", sa.Integer(), sa.ForeignKey("alert_rules.id", ondelete="CASCADE"), nullable=False),
        sa.Column("segment", sa.String(320), nullable=False),
        sa.Column("window_start", Ts, nullable=False),
        sa.Column("from_status", sa.String(16), nullable=False),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("streak", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("evidence", JsonDoc, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.UniqueConstraint("rule_id", "segment", "window_start", "to_status", name="uq_alert_transitions_key"),
    )
    op.create_index("ix_alert_transitions_alert", "alert_transitions", ["alert_id"])
    op.create_table(
        "alert_action_requests",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        _project(),
        sa.Column("alert_id", BigId, sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("transition_id", BigId, sa.ForeignKey("alert_transitions.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("params", JsonDoc, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result", JsonDoc),
        sa.Column("error", sa.Text()),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
        sa.UniqueConstraint("transition_id", "action", name="uq_alert_action_requests_key"),
    )
    op.create_index("ix_alert_action_requests_project_status", "alert_action_requests", ["project_id", "status"])
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Integer(), primary_key=True),
        _project(),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("description", sa.String(1000), nullable=False),
        sa.Column("event_types", JsonDoc, nullable=False),
        sa.Column("payload_format", sa.String(16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(500)),
        sa.Column("secret_enc", sa.Text(), nullable=False),
        sa.Column("previous_secret_enc", sa.Text()),
        sa.Column("previous_secret_expires_at", Ts),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
        sa.UniqueConstraint("project_id", "name", name="uq_webhook_endpoints_project_name"),
    )
    op.create_table(
        "webhook_messages",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("msg_id", sa.String(64), nullable=False, unique=True),
        _project(),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("payload", JsonDoc, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
    )
    op.create_index("ix_webhook_messages_project_created", "webhook_messages", ["project_id", "created_at"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        _project(),
        sa.Column("message_id", BigId, sa.ForeignKey("webhook_messages.id", ondelete="CASCADE"), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", Ts),
        sa.Column("last_status_code", sa.Integer()),
        sa.Column("last_error", sa.String(500)),
        sa.Column("delivered_at", Ts),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
        sa.UniqueConstraint("message_id", "endpoint_id", name="uq_webhook_deliveries_key"),
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"])
    op.create_index("ix_webhook_deliveries_project", "webhook_deliveries", ["project_id", "id"])
    op.create_table(
        "webhook_attempts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", BigId, sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("started_at", Ts, nullable=False),
        sa.Column("status_code", sa.Integer()),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("error", sa.String(500)),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.UniqueConstraint("delivery_id", "attempt", name="uq_webhook_attempts_key"),
    )


def downgrade() -> None:
    op.drop_table("webhook_attempts")
    op.drop_index("ix_webhook_deliveries_project", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_due", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_webhook_messages_project_created", table_name="webhook_messages")
    op.drop_table("webhook_messages")
    op.drop_table("webhook_endpoints")
    op.drop_index("ix_alert_action_requests_project_status", table_name="alert_action_requests")
    op.drop_table("alert_action_requests")
    op.drop_index("ix_alert_transitions_alert", table_name="alert_transitions")
    op.drop_table("alert_transitions")
    op.drop_index("ix_alerts_rule_segment", table_name="alerts")
    op.drop_index("ix_alerts_project_status", table_name="alerts")
    op.drop_table("alerts")
    op.drop_table("alert_rules")
