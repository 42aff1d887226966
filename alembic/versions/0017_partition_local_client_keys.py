"""On partitioned storage, a client id is unique within each partition; only server-timestamped ids are claimed
in the keys table (issue #22, item 5).

Until now a partitioned database kept each client id unique by a parent key `(project_id, client id, ts)` on
`events` and `feedback` plus a claim of *every* id in `event_keys` / `feedback_keys`: three more B-tree and heap
writes per event, ~3 µs of Postgres CPU (docs/scaling.md, "Sixth round"). Now every partition carries its own
unique index on `(project_id, client id)` (monitor/partitions/schema.py): a retry resends its timestamp and meets
its first copy in the same partition, and the keys table is written only for ids whose timestamp the server
assigned (and for every id with DRIFTLOOP_PARTITION_CLAIM_ALL_IDS). The parent key goes. A database converted by
this code's `to_partitioned` already has the per-partition indexes; the upgrade is then a no-op.

Locks: each partition's index is built in turn, blocking writes to that partition while Postgres reads it
(docs/scaling.md has the time per million rows); the migration is one transaction, so ingestion waits for all
of it.
Downgrade: the parent key comes back and the keys table is filled with the ids it lacks.

Revision ID: 0017_partition_local_client_keys
Revises: 0016_partial_session_index
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017_partition_local_client_keys"
down_revision: str | None = "0016_partial_session_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _partitions(bind: object, table: str) -> list[str]:
    return list(bind.exec_driver_sql(  # type: ignore[attr-defined]
        "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = %(t)s::regclass ORDER BY 1",
        {"t": table}).scalars())


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    from monitor.partitions.schema import BY_NAME
    from monitor.partitions.service import forget_partitioned_tables, partitioned_tables

    forget_partitioned_tables(bind)
    present = partitioned_tables(bind)
    for name in ("events", "feedback"):
        spec = BY_NAME[name]
        if name not in present or spec.local_unique is None:
            continue
        for partition in _partitions(bind, name):
            for sql in spec.local_index_sql(partition):
                bind.exec_driver_sql(sql)
        # only now: until every partition has its own key, the parent's keeps the ids unique
        bind.exec_driver_sql(f"ALTER TABLE {name} DROP CONSTRAINT IF EXISTS {spec.local_unique[0]}")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    from monitor.partitions.schema import BY_NAME, KEY_COLUMNS, local_index_name
    from monitor.partitions.service import forget_partitioned_tables, partitioned_tables

    forget_partitioned_tables(bind)
    present = partitioned_tables(bind)
    for name in ("events", "feedback"):
        spec = BY_NAME[name]
        if name not in present or spec.local_unique is None or spec.keys_table is None:
            continue
        constraint, cols = spec.local_unique
        bind.exec_driver_sql(f"ALTER TABLE {name} ADD CONSTRAINT {constraint} UNIQUE ({', '.join(cols)}, ts)")
        for partition in _partitions(bind, name):
            bind.exec_driver_sql(f"DROP INDEX IF EXISTS {local_index_name(partition)}")
        client = KEY_COLUMNS[spec.keys_table]
        bind.exec_driver_sql(f"INSERT INTO {spec.keys_table} (project_id, {client}, ts) SELECT project_id, {client}, "
                             f"min(ts) FROM {name} GROUP BY project_id, {client} ON CONFLICT DO NOTHING")
