"""The audit log records the authenticated principal beside the free-text actor label.

`audit_log.principal` is what the server authenticated (an API key by id and name, a signed-in operator, the
CLI's OS user, or the system itself; see monitor/principals.py); `actor` stays the label the caller chose.
Existing rows get NULL: nobody knows now who was behind them, and the log must not pretend otherwise.

Revision ID: 0008_audit_principal
Revises: 0007
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_audit_principal"
# The brief names "0007_api_key_scopes"; the revision id of 0007_api_key_scopes.py is "0007".
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("principal", sa.String(256), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("principal")
