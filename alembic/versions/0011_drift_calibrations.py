"""Drift calibrations stored with the reference they were computed from (issue #16).

Revision ID: 0011_drift_calibrations
Revises: 0010_explorer_triage
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011_drift_calibrations"
down_revision: str | None = "0010_explorer_triage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JsonDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "drift_calibrations",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("segment", sa.String(320), nullable=False),
        sa.Column("field", sa.String(16), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("reference_key", sa.String(64), nullable=False),
        sa.Column("n_reference", sa.Integer, nullable=False),
        sa.Column("lam", sa.Float, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("calibration", JsonDoc, nullable=False),
        sa.Column("computed_at", Ts, nullable=False),
        sa.UniqueConstraint("project_id", "segment", "field", "method", "reference_key",
                            name="uq_drift_calibrations_key"),
    )


def downgrade() -> None:
    op.drop_table("drift_calibrations")
