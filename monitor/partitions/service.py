"""Partition upkeep on Postgres: which tables are partitioned, which ranges exist, creating ranges ahead (and for
rows that fell into the DEFAULT partition), and dropping ranges that are wholly past the retention cutoff.

Service functions take the session first and never commit. On SQLite, and on a Postgres database that was not
converted, `partitioned_tables` is empty and every function here does nothing, so callers need no branches.

Ingestion never creates partitions (that takes an ACCESS EXCLUSIVE lock on the parent, which would stall every
other collector): a row whose range does not exist yet lands in the DEFAULT partition, so nothing is ever lost,
and the next upkeep run moves it into its own range.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session, sessionmaker

from monitor.db import run_unit
from monitor.partitions.bounds import Bounds, Interval, bounds_between, bounds_of
from monitor.partitions.schema import BY_NAME, KEY_COLUMNS, PartitionedTable

_CACHE_KEY = "driftloop_partitioned_tables"
_RANGE = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


def partitioned_tables(conn: Connection) -> frozenset[str]:
    """Names of the partitioned tables (empty on SQLite), remembered per pooled database connection."""
    if conn.dialect.name != "postgresql":
        return frozenset()
    info = conn.connection.info
    if _CACHE_KEY not in info:
        rows = conn.exec_driver_sql(
            "SELECT c.relname FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
            "WHERE c.relnamespace = current_schema()::regnamespace").scalars()
        info[_CACHE_KEY] = frozenset(rows)
    return frozenset(info[_CACHE_KEY])


def forget_partitioned_tables(conn: Connection) -> None:
    """After a conversion on this connection."""
    if conn.dialect.name == "postgresql":
        conn.connection.info.pop(_CACHE_KEY, None)


@dataclass(frozen=True)
class Partition:
    name: str
    bounds: Bounds | None  # None: the DEFAULT partition


def _parse_ts(value: str) -> datetime:
    # Postgres prints `2026-12-04 00:00:00+00`; the upkeep sets TimeZone to UTC for its transaction.
    return datetime.fromisoformat(value)


def list_partitions(session: Session, table: str) -> list[Partition]:
    rows = session.execute(text(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = CAST(:t AS regclass) ORDER BY c.relname"), {"t": table}).all()
    out: list[Partition] = []
    for name, bound in rows:
        found = _RANGE.search(bound)
        out.append(Partition(name, Bounds(_parse_ts(found[1]), _parse_ts(found[2])) if found else None))
    return out


def _utc(session: Session) -> None:
    session.execute(text("SET LOCAL TimeZone = 'UTC'"))


def _literal(ts: datetime) -> str:
    return f"'{ts.isoformat()}'"  # a datetime we computed, never input


def create_partition(session: Session, spec: PartitionedTable, bounds: Bounds) -> int:
    """Create one range; rows of that range waiting in the DEFAULT partition move into it. Returns rows moved."""
    name = spec.partition_name(bounds.suffix())
    values = f"FOR VALUES FROM ({_literal(bounds.lower)}) TO ({_literal(bounds.upper)})"
    in_range = f"{spec.key} >= {_literal(bounds.lower)} AND {spec.key} < {_literal(bounds.upper)}"
    default = spec.default_partition
    waiting = session.execute(text(f"SELECT 1 FROM {default} WHERE {in_range} LIMIT 1")).first()
    if waiting is None:
        session.execute(text(f"CREATE TABLE {name} PARTITION OF {spec.name} {values}"))
        for sql in spec.local_index_sql(name):  # the client id's key: Postgres copies only the parent's indexes
            session.execute(text(sql))
        return 0
    # Postgres refuses a new range while DEFAULT holds rows of it: build the table beside, move, then attach.
    session.execute(text(f"CREATE TABLE {name} (LIKE {spec.name} INCLUDING DEFAULTS)"))
    moved = session.connection().exec_driver_sql(
        f"WITH moved AS (DELETE FROM {default} WHERE {in_range} RETURNING *) "
        f"INSERT INTO {name} SELECT * FROM moved").rowcount
    session.execute(text(f"ALTER TABLE {spec.name} ATTACH PARTITION {name} {values}"))
    for sql in spec.local_index_sql(name):
        session.execute(text(sql))
    return int(moved)


@dataclass
class Upkeep:
    created: list[str]
    moved_from_default: int


def ensure_partitions(session: Session, start: datetime, end: datetime, interval: Interval) -> Upkeep:
    """Every partitioned table gets a range for each interval overlapping [start, end], plus one for each range
    that rows in its DEFAULT partition belong to. A range that overlaps an existing one (the interval setting
    changed) is left to the existing one."""
    out = Upkeep([], 0)
    present = partitioned_tables(session.connection())
    if not present:
        return out
    _utc(session)
    for name in sorted(present & BY_NAME.keys()):
        spec = BY_NAME[name]
        existing = [p.bounds for p in list_partitions(session, name) if p.bounds is not None]
        wanted = set(bounds_between(start, end, interval))
        # only the ranges that rows in DEFAULT belong to (not every range between its oldest and newest row);
        # date_trunc's weeks start on Monday, as ours do, and the transaction's TimeZone is UTC
        waiting = session.scalars(text(
            f"SELECT DISTINCT date_trunc('{interval}', {spec.key}) FROM {spec.default_partition}"))
        wanted.update(bounds_of(ts, interval) for ts in waiting)
        for b in sorted(wanted):
            if any(b.lower < e.upper and e.lower < b.upper for e in existing):
                continue
            out.moved_from_default += create_partition(session, spec, b)
            out.created.append(spec.partition_name(b.suffix()))
            existing.append(b)
    return out


def ensure_ahead(session: Session, now: datetime, interval: Interval, ahead_days: int) -> Upkeep:
    """Beat's upkeep: ranges from yesterday to `ahead_days` from now."""
    return ensure_partitions(session, now - timedelta(days=1), now + timedelta(days=ahead_days), interval)


def expired_partitions(session: Session, cutoff: datetime) -> list[tuple[str, str]]:
    """(table, partition) of every range that ends at or before `cutoff`: whole days of data to drop."""
    present = partitioned_tables(session.connection())
    if present:
        _utc(session)
    return [(name, part.name) for name in sorted(present & BY_NAME.keys()) for part in list_partitions(session, name)
            if part.bounds is not None and part.bounds.upper <= cutoff]


def partition_rows(session: Session, partition: str) -> int:
    """Rows in one partition (for the report; read before the drop, without locking the parent)."""
    return int(session.execute(text(f"SELECT count(*) FROM {partition}")).scalar_one())


def drop_partitions(session: Session, partitions: list[str]) -> None:
    """Drop ranges (the caller passes one range of each table: an event's day with its embeddings', scores' and
    feedback's). The parents are locked (ACCESS EXCLUSIVE) until the caller commits, so each call is its own
    short transaction; and it waits at most 2 s for a lock: a drop queued behind a long report would make every
    ingest queue behind it. A timeout raises; the next run tries again."""
    session.execute(text("SET LOCAL lock_timeout = '2s'"))
    for partition in partitions:
        session.execute(text(f"DROP TABLE {partition}"))


def forget_client_ids(session: Session, project_id: int, *, events: Iterable[str] = (),
                      feedback: Iterable[str] = ()) -> None:
    """Erasure: the dedupe keys of erased rows go too, so that the project could send them again, as it could
    with plain tables (a no-op unless partitioned)."""
    present = partitioned_tables(session.connection())
    for table, ids in (("events", list(events)), ("feedback", list(feedback))):
        keys = BY_NAME[table].keys_table
        if table in present and keys and ids:
            session.execute(text(f"DELETE FROM {keys} WHERE project_id = :p AND {KEY_COLUMNS[keys]} = ANY(:ids)"),
                            {"p": project_id, "ids": ids})


def _interval_in_use(session: Session, configured: str) -> Interval | None:
    """The configured interval; when the setting is `off` on a converted database (it was unset after the
    migration), the width of the newest range, so upkeep goes on rather than filling DEFAULT."""
    if configured != "off":
        return configured  # type: ignore[return-value]
    ranges = [p.bounds for p in list_partitions(session, "events") if p.bounds is not None]
    if not ranges:
        return None
    width = max(ranges).upper - max(ranges).lower
    return "day" if width <= timedelta(days=1) else "week" if width <= timedelta(days=7) else "month"


def upkeep(session: Session, now: datetime, configured: str, ahead_days: int) -> Upkeep:
    """What beat runs: ranges ahead, and ranges for rows waiting in DEFAULT (a no-op unless partitioned)."""
    if "events" not in partitioned_tables(session.connection()):
        return Upkeep([], 0)
    _utc(session)
    interval = _interval_in_use(session, configured)
    if interval is None:
        return Upkeep([], 0)
    return ensure_ahead(session, now, interval, ahead_days)


def upkeep_after_run(factory: sessionmaker[Session], now: datetime) -> None:
    """The in-process runner's upkeep (beat's `driftloop.partitions` task in production)."""
    from monitor.settings import get_settings

    settings = get_settings()
    run_unit(factory, partial(upkeep, now=now, configured=settings.partition_interval,
                              ahead_days=settings.partition_ahead_days))
