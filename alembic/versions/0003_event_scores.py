"""Per-event safety scores (toxicity, sentiment), computed once.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "event_scores",
        sa.Column("event_id", BigId, sa.ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("field", sa.String(16), primary_key=True),
        sa.Column("scorer", sa.String(96), primary_key=True),
        sa.Column("score", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("event_scores")
