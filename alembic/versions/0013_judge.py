"""LLM judge: tokens spent per project, judge and day; sealed judge API keys (issue #21).

Revision ID: 0013_judge
Revises: 0012_eval_scores
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_judge"
down_revision: str | None = "0012_eval_scores"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "judge_spend",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("evaluator", sa.String(64), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.Column("calls", sa.Integer, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
        sa.UniqueConstraint("project_id", "evaluator", "period", name="uq_judge_spend_key"),
    )
    op.create_table(
        "judge_keys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("secret_enc", sa.Text, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.UniqueConstraint("project_id", "name", name="uq_judge_keys_project_name"),
    )


def downgrade() -> None:
    op.drop_table("judge_keys")
    op.drop_table("judge_spend")
