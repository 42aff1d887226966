"""Evaluator scores, one per (event, evaluator, version) (issue #21).

Revision ID: 0012_eval_scores
Revises: 0011_drift_calibrations
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_eval_scores"
down_revision: str | None = "0011_drift_calibrations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "eval_scores",
        sa.Column("event_id", BigId, sa.ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("evaluator", sa.String(48), primary_key=True),
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("label", sa.Boolean, nullable=True),
        sa.Column("explanation", sa.String(500), nullable=False),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("created_at", Ts, nullable=False),
    )
    op.create_index("ix_eval_scores_project_evaluator", "eval_scores", ["project_id", "evaluator", "version", "value"])


def downgrade() -> None:
    op.drop_index("ix_eval_scores_project_evaluator", table_name="eval_scores")
    op.drop_table("eval_scores")
