"""Core tables: projects, API keys, events, feedback.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JsonDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("slug", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("config", JsonDoc, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("revoked_at", Ts, nullable=True),
    )
    op.create_index("ix_api_keys_project_id", "api_keys", ["project_id"])
    op.create_table(
        "events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("client_event_id", sa.String(128), nullable=False),
        sa.Column("ts", Ts, nullable=False),
        sa.Column("received_at", Ts, nullable=False),
        sa.Column("trace_id", sa.String(128)),
        sa.Column("session_id", sa.String(128)),
        sa.Column("model", sa.String(256)),
        sa.Column("model_version", sa.String(256)),
        sa.Column("prompt_template_id", sa.String(256)),
        sa.Column("prompt_template_version", sa.String(256)),
        sa.Column("prompt", sa.Text()),
        sa.Column("response", sa.Text()),
        sa.Column("latency_ms", sa.Float()),
        sa.Column("prompt_tokens", sa.Integer()),
        sa.Column("completion_tokens", sa.Integer()),
        sa.Column("error", sa.Text()),
        sa.Column("metadata", JsonDoc),
        sa.UniqueConstraint("project_id", "client_event_id", name="uq_events_project_client_id"),
    )
    op.create_index("ix_events_project_ts", "events", ["project_id", "ts"])
    op.create_index("ix_events_project_received", "events", ["project_id", "received_at"])
    op.create_table(
        "feedback",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("client_feedback_id", sa.String(128), nullable=False),
        sa.Column("event_client_id", sa.String(128), nullable=False),
        sa.Column("ts", Ts, nullable=False),
        sa.Column("received_at", Ts, nullable=False),
        sa.Column("score", sa.Float()),
        sa.Column("label", sa.String(256)),
        sa.Column("comment", sa.Text()),
        sa.Column("corrected_response", sa.Text()),
        sa.Column("metadata", JsonDoc),
        sa.UniqueConstraint("project_id", "client_feedback_id", name="uq_feedback_project_client_id"),
    )
    op.create_index("ix_feedback_project_event", "feedback", ["project_id", "event_client_id"])
    op.create_index("ix_feedback_project_ts", "feedback", ["project_id", "ts"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("events")
    op.drop_index("ix_api_keys_project_id", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("projects")
