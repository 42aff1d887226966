"""Approval UI: operator accounts, their sign-in sessions, and sign-in attempts.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ui_operators",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
        sa.Column("last_login_at", Ts, nullable=True),
        sa.Column("disabled_at", Ts, nullable=True),
    )
    op.create_table(
        "ui_sessions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("operator_id", sa.Integer(), sa.ForeignKey("ui_operators.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("expires_at", Ts, nullable=False),
    )
    op.create_index("ix_ui_sessions_operator_id", "ui_sessions", ["operator_id"])
    op.create_table(
        "ui_login_attempts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("remote", sa.String(64), nullable=True),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("at", Ts, nullable=False),
    )
    op.create_index("ix_ui_login_attempts_username_at", "ui_login_attempts", ["username", "at"])


def downgrade() -> None:
    op.drop_index("ix_ui_login_attempts_username_at", table_name="ui_login_attempts")
    op.drop_table("ui_login_attempts")
    op.drop_index("ix_ui_sessions_operator_id", table_name="ui_sessions")
    op.drop_table("ui_sessions")
    op.drop_table("ui_operators")
