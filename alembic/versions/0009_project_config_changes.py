"""The audit log of project configuration changes (`driftloop projects config`, PUT/PATCH /v1/project/config,
the UI settings page).

Revision ID: 0009
Revises: 0008_audit_principal
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0009"
down_revision: str | None = "0008_audit_principal"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Ts = sa.DateTime(timezone=True)
Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "project_config_changes",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("changed_at", Ts, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("before", Json, nullable=False),
        sa.Column("after", Json, nullable=False),
        sa.Column("diff", Json, nullable=False),
        sa.Column("recomputed_windows", sa.Integer(), nullable=False),
    )
    op.create_index("ix_project_config_changes_project_at", "project_config_changes", ["project_id", "changed_at"])


def downgrade() -> None:
    op.drop_index("ix_project_config_changes_project_at", table_name="project_config_changes")
    op.drop_table("project_config_changes")
