"""Idempotent bulk ingestion of events and feedback.

A batch is written inside the caller's transaction, so it is stored whole or not at all, and a retried batch
stores nothing twice (unique client id per project). On Postgres the rows travel by binary COPY straight into
the table, under a savepoint: a batch holding a client id already stored (a retry) breaks the unique index, the
savepoint is rolled back, and the batch goes the careful way instead — binary COPY into a temporary table, then
`INSERT … SELECT … ON CONFLICT DO NOTHING`, which stores only the new ids. Most batches are new, and the direct
COPY spares the server the staging table and the conflict handling (bench/ingest.py, docs/scaling.md).

On partitioned storage (monitor/partitions/schema.py) the client id is unique within each partition. A retry
resends the client's timestamp and so meets its first copy in the same partition. Only ids whose timestamp the
server assigns (the client sent none: each attempt gets its own) are also claimed in the keys table, which holds
an id once whatever partition it went to; with `claim_all_ids` every id is (about 3 µs more of Postgres CPU per
event, docs/scaling.md "Sixth round"), for clients that resend an id with another explicit timestamp.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg
from psycopg.types.json import set_json_dumps
from sqlalchemy import Table
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from monitor.db import utcnow
from monitor.ingest.fastparse import FastEvent
from monitor.models import Event, Feedback
from monitor.partitions.schema import BY_NAME
from monitor.partitions.service import partitioned_tables
from monitor.schemas import EventIn, FeedbackIn, dump_json


@dataclass(frozen=True)
class IngestCounts:
    accepted: int
    duplicates: int


# (column, Postgres type for COPY and the temp table) in COPY order; `metadata` travels as the dict itself.
_EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("project_id", "integer"),
    ("client_event_id", "varchar(128)"),
    ("ts", "timestamptz"),
    ("received_at", "timestamptz"),
    ("trace_id", "varchar(128)"),
    ("session_id", "varchar(128)"),
    ("model", "varchar(256)"),
    ("model_version", "varchar(256)"),
    ("prompt_template_id", "varchar(256)"),
    ("prompt_template_version", "varchar(256)"),
    ("prompt", "text"),
    ("response", "text"),
    ("latency_ms", "double precision"),
    ("prompt_tokens", "integer"),
    ("completion_tokens", "integer"),
    ("error", "text"),
    ("metadata", "jsonb"),
)
_FEEDBACK_COLUMNS: tuple[tuple[str, str], ...] = (
    ("project_id", "integer"),
    ("client_feedback_id", "varchar(128)"),
    ("event_client_id", "varchar(128)"),
    ("ts", "timestamptz"),
    ("received_at", "timestamptz"),
    ("score", "double precision"),
    ("label", "varchar(256)"),
    ("comment", "text"),
    ("corrected_response", "text"),
    ("metadata", "jsonb"),
)


def _event_row(project_id: int, e: EventIn | FastEvent, now: datetime) -> tuple[Any, ...]:
    return (
        project_id, e.event_id, e.timestamp or now, now, e.trace_id, e.session_id, e.model, e.model_version,
        e.prompt_template_id, e.prompt_template_version, e.prompt, e.response, e.latency_ms, e.prompt_tokens,
        e.completion_tokens, e.error, e.metadata,
    )


def _feedback_row(project_id: int, f: FeedbackIn, now: datetime) -> tuple[Any, ...]:
    return (
        project_id, f.feedback_id, f.event_id, f.timestamp or now, now, f.score, f.label, f.comment,
        f.corrected_response, f.metadata,
    )


def ingest_events(session: Session, project_id: int, events: Sequence[EventIn | FastEvent], *,
                  claim_all_ids: bool = False) -> IngestCounts:
    """`claim_all_ids`: on partitioned storage, claim every client id in the keys table, not only those whose
    timestamp the server assigns (`partition_claim_all_ids`; module docstring)."""
    now = utcnow()
    rows = [_event_row(project_id, e, now) for e in events]
    return _write(session, Event.__table__, _EVENT_COLUMNS, rows, ("project_id", "client_event_id"), claim_all_ids)  # type: ignore[arg-type]


def ingest_feedback(session: Session, project_id: int, items: Sequence[FeedbackIn], *,
                    claim_all_ids: bool = False) -> IngestCounts:
    now = utcnow()
    rows = [_feedback_row(project_id, f, now) for f in items]
    return _write(session, Feedback.__table__, _FEEDBACK_COLUMNS, rows, ("project_id", "client_feedback_id"),  # type: ignore[arg-type]
                  claim_all_ids)


def _write(
    session: Session,
    table: Table,
    columns: tuple[tuple[str, str], ...],
    rows: list[tuple[Any, ...]],
    conflict: tuple[str, str],
    claim_all_ids: bool = False,
) -> IngestCounts:
    if not rows:
        return IngestCounts(0, 0)
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        keys_table = BY_NAME[table.name].keys_table if table.name in partitioned_tables(conn) else None
        inserted = _copy_insert(conn.connection.driver_connection, table.name, columns, rows, conflict, keys_table,
                                claim_all_ids)
    else:
        inserted = _sqlite_insert(conn, table, columns, rows, conflict)
    return IngestCounts(accepted=inserted, duplicates=len(rows) - inserted)


_SAVEPOINT = "driftloop_ingest"


def _copy_rows(cur: Any, table: str, columns: tuple[tuple[str, str], ...], rows: Any) -> None:
    # Binary COPY: the profile of bench/ingest.py showed text COPY formatting as the collector's largest cost
    # after validation (3.5 µs of client CPU per event; binary 0.8 µs, and less parsing for the server).
    with cur.copy(f"COPY {table} ({', '.join(c for c, _ in columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types([t.split("(")[0] for _, t in columns])
        for row in rows:
            copy.write_row(row)


def _copy_insert(
    raw: Any, table: str, columns: tuple[tuple[str, str], ...], rows: list[tuple[Any, ...]], conflict: tuple[str, str],
    keys_table: str | None = None, claim_all_ids: bool = False,
) -> int:
    with raw.cursor() as cur:
        set_json_dumps(dump_json, context=cur)  # `metadata`: the schema's own JSON encoding, as binary jsonb
        cur.execute(f"SAVEPOINT {_SAVEPOINT}")
        try:
            if keys_table is not None:  # partitioned: claim the ids a retry could store in another partition
                names = [c for c, _ in columns]
                ts, received = names.index("ts"), names.index("received_at")
                claims = [(r[0], r[1], r[ts]) for r in rows if claim_all_ids or r[ts] == r[received]]
                if claims:
                    _copy_rows(cur, keys_table, (*columns[:2], columns[ts]), claims)
            _copy_rows(cur, table, columns, rows)
        except psycopg.errors.UniqueViolation:  # an id already stored, or twice in the batch: the careful way
            cur.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
            cur.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
            return _staged_insert(cur, table, columns, rows, conflict, keys_table, claim_all_ids)
        cur.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
        return len(rows)


def _staged_insert(
    cur: Any, table: str, columns: tuple[tuple[str, str], ...], rows: list[tuple[Any, ...]], conflict: tuple[str, str],
    keys_table: str | None, claim_all_ids: bool = False,
) -> int:
    staging = f"_ingest_{table}"
    names = ", ".join(c for c, _ in columns)
    cur.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {staging} ({', '.join(f'{c} {t}' for c, t in columns)}) "
        "ON COMMIT DELETE ROWS"
    )
    _copy_rows(cur, staging, columns, rows)
    cur.execute(_insert_sql(table, names, staging, conflict, keys_table, claim_all_ids))
    inserted = int(cur.rowcount)
    # Several batches may share one transaction (tests, bulk imports): empty the staging table now.
    cur.execute(f"TRUNCATE {staging}")
    return inserted


def _insert_sql(table: str, names: str, staging: str, conflict: tuple[str, str], keys_table: str | None,
                claim_all_ids: bool = False) -> str:
    if keys_table is None:
        return (f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging} "
                f"ON CONFLICT ({', '.join(conflict)}) DO NOTHING")
    # Partitioned by time (monitor/partitions/): each partition's own unique index on the client id skips a
    # retry that lands in the same partition (ON CONFLICT without a target checks every unique index of the
    # partition a row goes to). An id whose timestamp the server assigned (ts = received_at) may land in another
    # partition on its retry, so it is claimed first in the small keys table; a concurrent retry waits on the
    # claim and then skips, and only rows whose claim was new are inserted.
    key = ", ".join(conflict)

    def claims(alias: str) -> str:
        return "TRUE" if claim_all_ids else f"{alias}ts = {alias}received_at"

    joined = " AND ".join(f"c.{c} = s.{c}" for c in (*conflict, "ts"))
    return (f"WITH claimed AS (INSERT INTO {keys_table} ({key}, ts) "
            f"SELECT DISTINCT ON ({key}) {key}, ts FROM {staging} WHERE {claims('')} "
            f"ON CONFLICT DO NOTHING RETURNING {key}, ts) "
            f"INSERT INTO {table} ({names}) SELECT {', '.join('s.' + c for c in names.split(', '))} "
            f"FROM {staging} s WHERE NOT ({claims('s.')}) OR EXISTS (SELECT 1 FROM claimed c WHERE {joined}) "
            "ON CONFLICT DO NOTHING")


def _sqlite_insert(
    conn: Any,
    table: Table,
    columns: tuple[tuple[str, str], ...],
    rows: list[tuple[Any, ...]],
    conflict: tuple[str, str],
) -> int:
    names = [c for c, _ in columns]
    dicts = []
    for row in rows:
        d = dict(zip(names, row, strict=True))
        if d["metadata"] is not None:
            d["metadata"] = orjson.loads(dump_json(d["metadata"]))  # as Postgres would hold it
        dicts.append(d)
    raw = conn.connection.driver_connection
    before = raw.total_changes
    conn.execute(sqlite_insert(table).on_conflict_do_nothing(index_elements=list(conflict)), dicts)
    return int(raw.total_changes - before)
