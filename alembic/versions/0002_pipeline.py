"""Metrics pipeline: event vectors, metric values, window states, scan marks.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JsonDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "event_vectors",
        sa.Column("event_id", BigId, sa.ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("field", sa.String(16), primary_key=True),
        sa.Column("model_key", sa.String(64), primary_key=True),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "metric_values",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("metric", sa.String(96), nullable=False),
        sa.Column("segment", sa.String(320), nullable=False),
        sa.Column("window_start", Ts, nullable=False),
        sa.Column("window_end", Ts, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("value", sa.Float()),
        sa.Column("p_value", sa.Float()),
        sa.Column("threshold", sa.Float()),
        sa.Column("flagged", sa.Boolean()),
        sa.Column("details", JsonDoc, nullable=False),
        sa.Column("computed_at", Ts, nullable=False),
        sa.UniqueConstraint("project_id", "metric", "segment", "window_start", name="uq_metric_values_key"),
    )
    op.create_index("ix_metric_values_lookup", "metric_values", ["project_id", "metric", "window_start"])
    op.create_table(
        "window_states",
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("window_start", Ts, primary_key=True),
        sa.Column("window_end", Ts, nullable=False),
        sa.Column("dirty_since", Ts),
        sa.Column("dispatched_at", Ts),
        sa.Column("computed_at", Ts),
        sa.Column("complete", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "scan_marks",
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("scanned_until", Ts, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("scan_marks")
    op.drop_table("window_states")
    op.drop_index("ix_metric_values_lookup", table_name="metric_values")
    op.drop_table("metric_values")
    op.drop_table("event_vectors")
