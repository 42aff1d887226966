"""Full-text indexing off the ingest path (Postgres): the `event_search` rows of new events, in bounded batches.

A GIN index over `to_tsvector(prompt || response)` on `events` was half of Postgres's time per ingested row
(docs/scaling.md, third round), so the collector writes no text vector. This indexer, run every few seconds
(beat's `driftloop.search_index`, and after each run of the in-process runner), computes them for events past
a watermark, `event_search_state.indexed_through`, and the explorer's search reads `event_search` for events up
to it and computes the vector of the ones above it directly (monitor/events/search.py): a search is complete
the moment an event is committed; it gets the index's speed a few seconds later.

The watermark can only pass ids below which no event can still appear. Ids come from a sequence and are handed
out before their transaction commits, so an id can become visible after a higher one. The indexer therefore
reads the sequence's value (`pending_id`) and the time (`pending_at`), and only when no writing transaction
that was open at that time is still open (`pg_stat_activity.xact_start`) does `pending_id` become
`safe_through`, the bound of what is indexed. A long writing transaction holds the watermark back (the explorer
then scans more events directly), never makes it skip an event. Only sessions of the same database user (or
with pg_read_all_stats) show their `xact_start`: the collector and the worker must share the database user,
as every deployment in deploy/ does.

Erasure, retention and project deletion take the same transaction-level advisory lock as a batch here
(`lock_search_index`), so a batch never writes the vector of an event deleted while it ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from monitor.db import run_unit
from monitor.models import FTS_EXPRESSION

BATCH_ROWS = 20_000
# pg_advisory_xact_lock's key for "the set of event_search rows" (any constant unique to this use)
_LOCK_KEY = 0x64_6C_5F_66_74_73  # "dl_fts"


@dataclass
class Indexed:
    rows: int = 0
    indexed_through: int = 0
    safe_through: int = 0


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def lock_search_index(session: Session) -> None:
    """Serialize with the indexer until the caller's transaction ends (a no-op on SQLite). Callers that delete
    events take it first, so no batch computed from a snapshot that still held those events commits after them."""
    if is_postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})


def indexed_through(session: Session) -> int:
    """Events with a higher id have no `event_search` row yet (0 before the first run)."""
    value = session.execute(text("SELECT indexed_through FROM event_search_state WHERE id = 1")).scalar()
    return int(value or 0)


def _advance_safe_bound(session: Session, safe: int, pending_id: int | None,
                        pending_at: datetime | None) -> tuple[int, int | None, datetime | None]:
    # Writers: sessions whose transaction has written (it holds an xid) or is running a statement (a COPY
    # that has taken an id but not yet written its first row has no xid yet). Idle read-only transactions
    # cannot insert events and do not hold the watermark back.
    oldest = session.execute(text(
        "SELECT min(xact_start) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL "
        "AND (backend_xid IS NOT NULL OR state = 'active')")).scalar()
    if pending_id is not None and pending_at is not None and (oldest is None or oldest > pending_at):
        safe, pending_id, pending_at = max(safe, pending_id), None, None
    if pending_id is None:
        # the sequence first, then the clock: any transaction that took an id up to `last` began before `now`
        last = session.execute(text(
            "SELECT pg_sequence_last_value(pg_get_serial_sequence('events', 'id')::regclass)")).scalar()
        now = session.execute(text("SELECT clock_timestamp()")).scalar()
        if last is not None and int(last) > safe:
            pending_id, pending_at = int(last), now
    return safe, pending_id, pending_at


def index_batch(session: Session, batch_rows: int = BATCH_ROWS) -> Indexed:
    """Write the `event_search` rows of up to `batch_rows` events past the watermark, and move it. Idempotent
    (a batch redone after a crash writes nothing twice); concurrent runs wait for each other."""
    if not is_postgres(session):
        return Indexed()
    lock_search_index(session)
    session.execute(text("INSERT INTO event_search_state (id, indexed_through, safe_through) VALUES (1, 0, 0) "
                         "ON CONFLICT (id) DO NOTHING"))
    through, safe, pending_id, pending_at = session.execute(text(
        "SELECT indexed_through, safe_through, pending_id, pending_at FROM event_search_state WHERE id = 1")).one()
    safe, pending_id, pending_at = _advance_safe_bound(session, int(safe), pending_id, pending_at)
    rows, top = 0, int(through)
    if safe > top:
        # Along the id (the primary key: one range scan, per partition when partitioned), oldest first.
        count, last = session.execute(text(
            "WITH batch AS (SELECT id, project_id, ts, prompt, response FROM events "
            "WHERE id > :lo AND id <= :hi ORDER BY id LIMIT :n), "
            "written AS (INSERT INTO event_search (event_id, project_id, tsv, event_ts) "
            f"SELECT id, project_id, {FTS_EXPRESSION}, ts FROM batch ON CONFLICT DO NOTHING) "
            "SELECT count(*), max(id) FROM batch"), {"lo": top, "hi": safe, "n": batch_rows}).one()
        rows = int(count)
        top = int(last) if rows == batch_rows else safe
    session.execute(text(
        "UPDATE event_search_state SET indexed_through = :t, safe_through = :s, pending_id = :pi, "
        "pending_at = :pa WHERE id = 1"), {"t": top, "s": safe, "pi": pending_id, "pa": pending_at})
    return Indexed(rows, top, safe)


def index_pending(factory: sessionmaker[Session], *, max_batches: int = 50,
                  batch_rows: int = BATCH_ROWS) -> Indexed:
    """Batches, each its own short transaction, until one comes up short, at least two (the safe bound read
    in the first can only be confirmed from a later transaction: pg_stat_activity is read once per
    transaction), at most `max_batches`: a backlog (after downtime) is worked off over several runs."""
    total = Indexed()
    for i in range(max_batches):
        done = run_unit(factory, lambda s: index_batch(s, batch_rows))
        total.rows += done.rows
        total.indexed_through, total.safe_through = done.indexed_through, done.safe_through
        if i >= 1 and done.rows < batch_rows:
            break
    return total


def index_after_run(factory: sessionmaker[Session], now: datetime) -> None:
    """The in-process runner's indexing (beat's `driftloop.search_index` task in production)."""
    del now
    index_pending(factory)
