"""API key scopes: what each key may do (`ingest`, `read`, `admin`).

Keys that exist before this revision get every scope, so upgrading never locks out a running deployment's
applications or scripts; new keys get what `driftloop keys create --scope` names (default `ingest`).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ALL_SCOPES = "ingest read admin"


def upgrade() -> None:
    # The server default fills the existing rows (with full access) and is dropped right after: a key written
    # without naming its scopes must fail, never silently get them all. SQLite can only drop a column default
    # by copying the table, hence the batch.
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("scopes", sa.String(64), nullable=False, server_default=ALL_SCOPES))
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("scopes", existing_type=sa.String(64), existing_nullable=False, server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("scopes")
