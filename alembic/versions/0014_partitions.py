"""Time-partitioned storage (issue #22): children carry their event's timestamp; on Postgres, unless
DRIFTLOOP_PARTITION_INTERVAL is `off`, events, feedback, embeddings and scores of a new (empty) database become
range partitions by time (daily by default). A database that already holds events or feedback is left plain:
converting it locks ingestion for about 3 minutes per million events (docs/scaling.md), which is for the
operator to schedule with `driftloop partitions convert`, not for a deploy's migration step to start unasked.

Revision ID: 0014_partitions
Revises: 0013_judge
Create Date: 2026-12-04
"""

import sys
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_partitions"
down_revision: str | None = "0013_judge"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Ts = sa.DateTime(timezone=True)


def _progress(message: object) -> None:
    print(f"0014_partitions: {message}", file=sys.stderr, flush=True)


def upgrade() -> None:
    # Nullable and without a backfill on plain tables (a metadata-only change on Postgres); the writers fill it.
    op.add_column("event_vectors", sa.Column("event_ts", Ts, nullable=True))
    op.add_column("event_scores", sa.Column("event_ts", Ts, nullable=True))
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    from monitor.partitions.convert import holds_rows, to_partitioned
    from monitor.partitions.service import forget_partitioned_tables
    from monitor.settings import Settings

    settings = Settings()
    if settings.partition_interval == "off":
        return
    if holds_rows(bind):
        _progress("this database holds events or feedback, so its tables stay plain for now; convert them at a "
                  "time of your choosing with `driftloop partitions convert` (--dry-run first: it says how long "
                  "ingestion will wait)")
        return
    to_partitioned(bind, settings.partition_interval, settings.partition_ahead_days, _progress)
    forget_partitioned_tables(bind)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        from monitor.partitions.service import forget_partitioned_tables, partitioned_tables

        forget_partitioned_tables(bind)
        if "events" in partitioned_tables(bind):
            from monitor.partitions.convert import to_plain

            to_plain(bind, _progress)
        forget_partitioned_tables(bind)
    with op.batch_alter_table("event_scores") as batch:
        batch.drop_column("event_ts")
    with op.batch_alter_table("event_vectors") as batch:
        batch.drop_column("event_ts")
