"""What is partitioned on Postgres, by which column, and the keys each table has in either shape.

The SQLAlchemy models describe the plain shape (SQLite, and Postgres before conversion). A partitioned table's
primary key and unique constraints must contain the partition key, and nothing may hold a foreign key to it
unless the key includes that column; so when converted:

- `events` and `feedback` (by `ts`) get primary key `(id, ts)`. Their client id is unique *within each partition*:
  a unique index on `(project_id, client id)` that every partition carries on its own (`local_unique`; Postgres
  allows a parent's unique key only if it holds the partition key, and `(project_id, client id, ts)` would let a
  retry with a new timestamp in the same day through). A retry resends its client timestamp, so it lands in the
  same partition and is a duplicate there. Only a timestamp the *server* assigns differs between attempts and may
  fall in another partition: those ids are also claimed in two small non-partitioned tables, `event_keys` and
  `feedback_keys`, whose primary key is the client id per project (`partition_claim_all_ids` claims every id
  there, for clients that resend an id with another explicit timestamp; docs/scaling.md, "Sixth round").
- `event_vectors`, `event_scores` and `event_search` (by `event_ts`, their event's timestamp, written with
  them) so an expired day's embeddings, scores and text vectors go with its events; their foreign keys to
  `events` are dropped, as are `drift_cluster_events`'s and `eval_scores`'s (retention and erasure delete
  those rows explicitly).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PartitionedTable:
    name: str
    key: str  # the partition column (a timestamptz)
    id_column: str  # what the conversion walks through in batches
    partitioned_pk: tuple[str, ...]
    plain_pk: tuple[str, ...]
    # (constraint name, plain columns); partitioned, the partition key is appended
    unique: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # (constraint name, columns) of the client id: plain, a unique constraint; partitioned, a unique index that
    # every partition has of its own (`local_index_sql`)
    local_unique: tuple[str, tuple[str, ...]] | None = None
    # (name, "USING method (expr)" or "(cols)") — identical in both shapes
    indexes: tuple[tuple[str, str], ...] = ()
    # the dedupe table that keeps the plain unique key across partitions, and that key's columns
    keys_table: str | None = None
    # the plain shape's foreign key to events (children)
    event_fk: bool = False
    # a foreign key to projects (feedback's; events have none: docs/scaling.md, third round)
    project_fk: bool = False

    def partition_name(self, suffix: str) -> str:
        return f"{self.name}_{suffix}"

    @property
    def default_partition(self) -> str:
        return f"{self.name}_default"

    def local_index_sql(self, partition: str) -> list[str]:
        """The DDL that gives one partition its own unique client-id index (none without `local_unique`);
        idempotent, so the migration can run it over partitions that may have it already."""
        if self.local_unique is None:
            return []
        return [f"CREATE UNIQUE INDEX IF NOT EXISTS {local_index_name(partition)} ON {partition} "
                f"({', '.join(self.local_unique[1])})"]


def local_index_name(partition: str) -> str:
    return f"{partition}_client_id_key"  # events_p20261206_client_id_key: well under Postgres's 63 characters


EVENTS = PartitionedTable(
    name="events", key="ts", id_column="id", partitioned_pk=("id", "ts"), plain_pk=("id",),
    local_unique=("uq_events_project_client_id", ("project_id", "client_event_id")),
    indexes=(("ix_events_project_ts", "(project_id, ts)"), ("ix_events_project_received", "(project_id, received_at)"),
             ("ix_events_project_session", "(project_id, session_id) WHERE session_id IS NOT NULL"),
             ("ix_events_metadata", "USING gin (metadata jsonb_path_ops)")),
    keys_table="event_keys",
)
FEEDBACK = PartitionedTable(
    name="feedback", key="ts", id_column="id", partitioned_pk=("id", "ts"), plain_pk=("id",),
    local_unique=("uq_feedback_project_client_id", ("project_id", "client_feedback_id")),
    indexes=(("ix_feedback_project_event", "(project_id, event_client_id)"),
             ("ix_feedback_project_ts", "(project_id, ts)"),
             ("ix_feedback_project_score", "(project_id, score)")),
    keys_table="feedback_keys", project_fk=True,
)
EVENT_VECTORS = PartitionedTable(
    name="event_vectors", key="event_ts", id_column="event_id",
    partitioned_pk=("event_id", "field", "model_key", "event_ts"), plain_pk=("event_id", "field", "model_key"),
    event_fk=True,
)
EVENT_SCORES = PartitionedTable(
    name="event_scores", key="event_ts", id_column="event_id",
    partitioned_pk=("event_id", "field", "scorer", "event_ts"), plain_pk=("event_id", "field", "scorer"),
    indexes=(("ix_event_scores_scorer_score", "(scorer, field, score)"),), event_fk=True,
)
EVENT_SEARCH = PartitionedTable(
    name="event_search", key="event_ts", id_column="event_id", partitioned_pk=("event_id", "event_ts"),
    plain_pk=("event_id",), indexes=(("ix_event_search_tsv", "USING gin (tsv)"),), event_fk=True,
)
# Parents first: the children's conversion reads each row's event timestamp from the converted events.
TABLES: tuple[PartitionedTable, ...] = (EVENTS, FEEDBACK, EVENT_VECTORS, EVENT_SCORES, EVENT_SEARCH)
BY_NAME = {t.name: t for t in TABLES}
# The client-id column of each keys table's plain unique key
KEY_COLUMNS = {"event_keys": "client_event_id", "feedback_keys": "client_feedback_id"}
# Tables that lose their foreign key to `events` when it is partitioned (and get it back when it is not).
EVENT_CHILDREN = ("event_vectors", "event_scores", "drift_cluster_events", "eval_scores", "event_search")
