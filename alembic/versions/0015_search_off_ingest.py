"""Full-text search off the ingest path, and no per-row foreign key from events to projects (issue #22, item 5).

`event_search` (an event's text vector, GIN-indexed; partitioned like events when they are) and its indexer's
progress row `event_search_state` are created; on Postgres the existing events' vectors are written into it,
the watermark set past them, and the expression index `ix_events_fts` dropped. The foreign key
events.project_id -> projects goes (deleting a project deletes its events explicitly). Postgres locks events
against writes while the vectors are built: about as long as building `ix_events_fts` took.

Revision ID: 0015_search_off_ingest
Revises: 0014_partitions
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import TSVECTOR

revision: str = "0015_search_off_ingest"
down_revision: str | None = "0014_partitions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Ts = sa.DateTime(timezone=True)
FTS_EXPRESSION = ("to_tsvector('english'::regconfig, (COALESCE(prompt, ''::text) || ' '::text) "
                  "|| COALESCE(response, ''::text))")
# SQLite's foreign keys have no name: batch mode finds this one by the convention
_FK_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def _events_partitions(bind: sa.Connection) -> list[tuple[str, str]]:
    """(partition name, bound) of each partition of events (none when plain)."""
    rows = bind.exec_driver_sql(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i JOIN pg_class c ON c.oid = "
        "i.inhrelid WHERE i.inhparent = 'events'::regclass").all()
    return [(str(n), str(b)) for n, b in rows]


def upgrade() -> None:
    op.create_table(
        "event_search_state",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("indexed_through", sa.BigInteger(), nullable=False),
        sa.Column("safe_through", sa.BigInteger(), nullable=False),
        sa.Column("pending_id", sa.BigInteger(), nullable=True),
        sa.Column("pending_at", Ts, nullable=True),
    )
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        op.create_table(
            "event_search",
            sa.Column("event_id", sa.Integer(), sa.ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("project_id", sa.Integer(), nullable=False),
            sa.Column("tsv", sa.Text(), nullable=False),
            sa.Column("event_ts", Ts, nullable=True),
        )
        op.create_index("ix_event_search_tsv", "event_search", ["tsv"])
        with op.batch_alter_table("events", naming_convention=_FK_NAMES) as batch:
            batch.drop_constraint("fk_events_project_id_projects", type_="foreignkey")
        return
    bind.exec_driver_sql("ALTER TABLE events DROP CONSTRAINT IF EXISTS events_project_id_fkey")
    # No writer may commit an event between the backfill and the watermark set past it.
    bind.exec_driver_sql("LOCK TABLE events IN SHARE MODE")
    parts = _events_partitions(bind)
    if parts:
        bind.exec_driver_sql(
            "CREATE TABLE event_search (event_id bigint NOT NULL, project_id integer NOT NULL, "
            "tsv tsvector NOT NULL, event_ts timestamptz NOT NULL) PARTITION BY RANGE (event_ts)")
        bind.exec_driver_sql("ALTER TABLE event_search ADD CONSTRAINT event_search_pkey "
                             "PRIMARY KEY (event_id, event_ts)")
        for name, bound in parts:
            child = "event_search" + name.removeprefix("events")
            bind.exec_driver_sql(f"CREATE TABLE {child} PARTITION OF event_search {bound}")
    else:
        op.create_table(
            "event_search",
            sa.Column("event_id", sa.BigInteger(), sa.ForeignKey("events.id", ondelete="CASCADE"),
                      primary_key=True),
            sa.Column("project_id", sa.Integer(), nullable=False),
            sa.Column("tsv", TSVECTOR(), nullable=False),
            sa.Column("event_ts", Ts, nullable=True),
        )
    bind.exec_driver_sql(f"INSERT INTO event_search (event_id, project_id, tsv, event_ts) "
                         f"SELECT id, project_id, {FTS_EXPRESSION}, ts FROM events")
    bind.exec_driver_sql("CREATE INDEX ix_event_search_tsv ON event_search USING gin (tsv)")
    bind.exec_driver_sql("INSERT INTO event_search_state (id, indexed_through, safe_through) "
                         "SELECT 1, coalesce(max(id), 0), coalesce(max(id), 0) FROM events")
    bind.exec_driver_sql("DROP INDEX IF EXISTS ix_events_fts")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS ix_events_fts ON events USING gin ({FTS_EXPRESSION})")
        bind.exec_driver_sql("ALTER TABLE events ADD CONSTRAINT events_project_id_fkey FOREIGN KEY (project_id) "
                             "REFERENCES projects (id) ON DELETE CASCADE")
        bind.exec_driver_sql("DROP TABLE event_search")
    else:
        op.drop_table("event_search")
        with op.batch_alter_table("events", naming_convention=_FK_NAMES) as batch:
            batch.create_foreign_key("fk_events_project_id_projects", "projects", ["project_id"], ["id"],
                                     ondelete="CASCADE")
    op.drop_table("event_search_state")
