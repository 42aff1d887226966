"""Convert the growing tables between the plain and the partitioned shape on Postgres (migration 0014 on a new,
empty database; `driftloop partitions convert` on one that holds rows, at a time the operator chooses).

Each table is rebuilt, not altered in place (Postgres cannot partition an existing table): a twin in the other
shape is created beside the live one (`<name>_new`, its keys and indexes suffixed too), the rows copied into it in
batches along the id (with a progress note), and at the end the live table is dropped and the twin takes its
name and its keys' names, all inside one transaction (the migration's, or the command's), so a failure leaves
the database as it was. While rows are copied the tables are locked against writes only (SHARE ROW EXCLUSIVE:
reads go on, ingestion waits); the swap takes ACCESS EXCLUSIVE for the moments before the commit.
docs/scaling.md says how long a conversion takes per million rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection

from monitor.partitions.bounds import Bounds, Interval, bounds_between, bounds_of, floor
from monitor.partitions.schema import EVENT_CHILDREN, KEY_COLUMNS, TABLES, PartitionedTable

BATCH_ROWS = 50_000


@dataclass(frozen=True)
class Copied:
    """A progress note: after each batch of a table's copy."""

    table: str
    copied: int
    total: int
    seconds: float

    def __str__(self) -> str:
        return f"{self.table}: {self.copied}/{self.total} rows ({self.seconds:.1f} s)"


Progress = Callable[[Copied], None]

# Seconds per million rows of each table. The split between tables is from bench/partition_migration.py on
# 2026-12-04 (1 M events with one 384-d embedding and one score each, 100 k feedback); the scale is the
# copy-beside-and-swap conversion's own run on 2026-12-05 (300 k events in 24.4 s, 81 s per million events, on
# the 2-core development VM at load 4-5), which took 0.47 of the older rates. `events` includes building its
# dedupe keys and the indexes.
SECONDS_PER_MILLION = {"events": 45.0, "feedback": 13.0, "event_vectors": 20.0, "event_scores": 14.0}
# The shape the command's printed rate describes: per event, one embedding and one score; a tenth as much feedback.
TYPICAL_MILLION = {"events": 1_000_000, "event_vectors": 1_000_000, "event_scores": 1_000_000, "feedback": 100_000}


def estimate_seconds(rows: dict[str, int]) -> float:
    """How long converting tables of these sizes takes, by the rates above (a quiet, larger server is faster)."""
    return sum(SECONDS_PER_MILLION.get(table, 60.0) * n / 1e6 for table, n in rows.items())


def row_counts(conn: Connection, *, exact: bool = False) -> dict[str, int]:
    """Rows in each growing table: the planner's estimate (instant; a table never analyzed is counted), or exact."""
    out: dict[str, int] = {}
    for spec in _tables(conn):
        estimate = -1 if exact else conn.exec_driver_sql(
            "SELECT coalesce(sum(c.reltuples), -1) FROM pg_class c WHERE c.oid = %(t)s::regclass "
            "OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = %(t)s::regclass)",
            {"t": spec.name}).scalar_one()
        if estimate < 0:
            estimate = conn.exec_driver_sql(f"SELECT count(*) FROM {spec.name}").scalar_one()
        out[spec.name] = max(0, int(estimate))
    return out


def holds_rows(conn: Connection) -> bool:
    """Whether any event or feedback item is stored (embeddings and scores belong to events)."""
    return bool(conn.exec_driver_sql(
        "SELECT EXISTS (SELECT 1 FROM events) OR EXISTS (SELECT 1 FROM feedback)").scalar_one())


def _present(conn: Connection, names: tuple[str, ...]) -> list[str]:
    """Those of `names` that exist: migration 0014 converts with this code before 0015 creates `event_search`."""
    return [n for n in names if conn.exec_driver_sql("SELECT to_regclass(%(t)s)", {"t": n}).scalar() is not None]


def _tables(conn: Connection) -> list[PartitionedTable]:
    present = set(_present(conn, tuple(spec.name for spec in TABLES)))
    return [spec for spec in TABLES if spec.name in present]


def _cols(conn: Connection, table: str) -> list[str]:
    return list(conn.exec_driver_sql(
        "SELECT attname FROM pg_attribute WHERE attrelid = %(t)s::regclass AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attnum", {"t": table}).scalars())


def _new(spec: PartitionedTable) -> str:
    """The name the rebuilt table has until the swap."""
    return f"{spec.name}_new"


def _build(conn: Connection, spec: PartitionedTable, partitioned: bool) -> str:
    """Create the table in the other shape beside the live one, its keys and indexes named with a `_new` suffix
    (the live table still holds the real names); returns its name."""
    new = _new(spec)
    by = f" PARTITION BY RANGE ({spec.key})" if partitioned else ""
    conn.exec_driver_sql(f"CREATE TABLE {new} (LIKE {spec.name} INCLUDING DEFAULTS){by}")
    pk = spec.partitioned_pk if partitioned else spec.plain_pk
    conn.exec_driver_sql(f"ALTER TABLE {new} ADD CONSTRAINT {new}_pkey PRIMARY KEY ({', '.join(pk)})")
    if not partitioned and spec.key == "event_ts":
        conn.exec_driver_sql(f"ALTER TABLE {new} ALTER COLUMN event_ts DROP NOT NULL")
    for name, cols in spec.unique:
        key = (*cols, spec.key) if partitioned else cols
        conn.exec_driver_sql(f"ALTER TABLE {new} ADD CONSTRAINT {name}_new UNIQUE ({', '.join(key)})")
    if spec.local_unique is not None and not partitioned:  # partitioned: each partition's own (local_index_sql)
        name, cols = spec.local_unique
        conn.exec_driver_sql(f"ALTER TABLE {new} ADD CONSTRAINT {name}_new UNIQUE ({', '.join(cols)})")
    for name, how in spec.indexes:
        conn.exec_driver_sql(f"CREATE INDEX {name}_new ON {new} {how}")
    if spec.project_fk:
        conn.exec_driver_sql(f"ALTER TABLE {new} ADD CONSTRAINT {new}_project_id_fkey "
                             "FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE")
    return new


def _swap(conn: Connection, spec: PartitionedTable, partitioned: bool) -> None:
    """Drop the live table (with its partitions, if any) and give the rebuilt one its name and its keys' and
    indexes' names. This is where the table is locked ACCESS EXCLUSIVE (reads wait too), until the commit."""
    new = _new(spec)
    if spec.id_column == "id":  # the id sequence is owned by the old table: keep it from being dropped with it
        conn.exec_driver_sql(f"ALTER SEQUENCE {spec.name}_id_seq OWNED BY NONE")
    conn.exec_driver_sql(f"DROP TABLE {spec.name}")
    conn.exec_driver_sql(f"ALTER TABLE {new} RENAME TO {spec.name}")
    conn.exec_driver_sql(f"ALTER TABLE {spec.name} RENAME CONSTRAINT {new}_pkey TO {spec.name}_pkey")
    for name, _ in spec.unique:
        conn.exec_driver_sql(f"ALTER TABLE {spec.name} RENAME CONSTRAINT {name}_new TO {name}")
    if spec.local_unique is not None and not partitioned:
        name = spec.local_unique[0]
        conn.exec_driver_sql(f"ALTER TABLE {spec.name} RENAME CONSTRAINT {name}_new TO {name}")
    for name, _ in spec.indexes:
        conn.exec_driver_sql(f"ALTER INDEX {name}_new RENAME TO {name}")
    if spec.project_fk:
        conn.exec_driver_sql(f"ALTER TABLE {spec.name} RENAME CONSTRAINT {new}_project_id_fkey "
                             f"TO {spec.name}_project_id_fkey")
    if spec.id_column == "id":
        conn.exec_driver_sql(f"ALTER SEQUENCE {spec.name}_id_seq OWNED BY {spec.name}.id")


def _copy(conn: Connection, spec: PartitionedTable, select: str, progress: Progress) -> int:
    """Copy the live table's rows into the rebuilt one, in batches along the id."""
    new = _new(spec)
    cols = ", ".join(_cols(conn, new))
    idc = spec.id_column
    lo, hi, total = conn.exec_driver_sql(f"SELECT min({idc}), max({idc}), count(*) FROM {spec.name}").one()
    copied, started = 0, time.monotonic()
    if lo is None:
        return 0
    step = BATCH_ROWS
    for start in range(int(lo), int(hi) + 1, step):
        copied += conn.exec_driver_sql(
            f"INSERT INTO {new} ({cols}) {select} WHERE o.{spec.id_column} >= {start} "
            f"AND o.{spec.id_column} < {start + step}").rowcount
        progress(Copied(spec.name, copied, int(total), time.monotonic() - started))
    return copied


RECENT_DAYS = 35


def _initial_ranges(conn: Connection, source: str, key: str, interval: Interval, ahead_days: int,
                    now: datetime) -> list[Bounds]:
    """The ranges the converted table starts with: one per month holding rows older than about a month (so a
    year of history is a dozen partitions, not 365: the conversion runs in one transaction, which locks every
    partition it creates, within max_locks_per_transaction), every range from there to `ahead_days` from now,
    and one per range holding rows beyond that. Only ranges that hold rows are made for the past and future."""
    recent = floor(now - timedelta(days=RECENT_DAYS), "month")
    end = now + timedelta(days=ahead_days)
    old_months = conn.exec_driver_sql(
        f"SELECT DISTINCT date_trunc('month', {key}) FROM {source} WHERE {key} < %(r)s", {"r": recent}).scalars()
    future = conn.exec_driver_sql(
        f"SELECT DISTINCT date_trunc('{interval}', {key}) FROM {source} WHERE {key} > %(e)s", {"e": end}).scalars()
    ranges = {bounds_of(m, "month") for m in old_months} | set(bounds_between(recent, end, interval))
    ranges |= {b for b in (bounds_of(f, interval) for f in future) if b.lower > end}
    # a month of old rows may overlap the first recent range only if they share a start; keep the recent one
    out: list[Bounds] = []
    for b in sorted(ranges):
        if not out or b.lower >= out[-1].upper:
            out.append(b)
    return out


def _lock(conn: Connection, lock_timeout_ms: int | None) -> None:
    """Lock the four tables against writes. With a timeout, give up (raising; nothing changed) rather than wait
    behind a long transaction, since every writer would queue behind this lock meanwhile."""
    if lock_timeout_ms is not None:
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
    for spec in _tables(conn):
        conn.exec_driver_sql(f"LOCK TABLE {spec.name} IN SHARE ROW EXCLUSIVE MODE")
    if lock_timeout_ms is not None:
        conn.exec_driver_sql("SET LOCAL lock_timeout = 0")


def to_partitioned(conn: Connection, interval: Interval, ahead_days: int = 7,
                   progress: Progress = lambda _m: None, now: datetime | None = None,
                   lock_timeout_ms: int | None = None) -> dict[str, int]:
    """Plain -> partitioned. Returns rows copied per table.

    The tables are locked against writes (SHARE ROW EXCLUSIVE) while each is copied into its partitioned twin
    beside it; reads go on. Only the final swap (the foreign keys dropped, the old tables dropped, the new ones
    renamed) locks them ACCESS EXCLUSIVE, for the moments before the commit."""
    now = now or datetime.now(UTC)
    conn.exec_driver_sql("SET LOCAL TimeZone = 'UTC'")
    _lock(conn, lock_timeout_ms)
    copied: dict[str, int] = {}
    tables = _tables(conn)
    for spec in tables:
        if spec.key == "event_ts":
            # the event's timestamp, from the (still plain, live) events table: the join drops no row, since a
            # foreign key holds every child to its event
            cols = [c for c in _cols(conn, spec.name) if c != "event_ts"]
            # (event_ts is the last column of both tables: 0014 added it)
            select = (f"SELECT {', '.join('o.' + c for c in cols)}, e.ts FROM {spec.name} o "
                      "JOIN events e ON e.id = o.event_id")
        else:
            select = f"SELECT o.* FROM {spec.name} o"
        new = _build(conn, spec, partitioned=True)
        for b in _initial_ranges(conn, "events" if spec.key == "event_ts" else spec.name,
                                 "ts" if spec.key == "event_ts" else spec.key, interval, ahead_days, now):
            conn.exec_driver_sql(f"CREATE TABLE {spec.partition_name(b.suffix())} PARTITION OF {new} "
                                 f"FOR VALUES FROM ('{b.lower.isoformat()}') TO ('{b.upper.isoformat()}')")
            for sql in spec.local_index_sql(spec.partition_name(b.suffix())):
                conn.exec_driver_sql(sql)
        conn.exec_driver_sql(f"CREATE TABLE {spec.default_partition} PARTITION OF {new} DEFAULT")
        for sql in spec.local_index_sql(spec.default_partition):
            conn.exec_driver_sql(sql)
        copied[spec.name] = _copy(conn, spec, select, progress)
        if spec.keys_table:
            client = KEY_COLUMNS[spec.keys_table]
            conn.exec_driver_sql(f"CREATE TABLE {spec.keys_table} (project_id integer NOT NULL, "
                                 f"{client} varchar(128) NOT NULL, ts timestamptz NOT NULL, "
                                 f"PRIMARY KEY (project_id, {client}))")
            conn.exec_driver_sql(f"CREATE INDEX ix_{spec.keys_table}_ts ON {spec.keys_table} (ts)")
            conn.exec_driver_sql(f"INSERT INTO {spec.keys_table} SELECT project_id, {client}, min(ts) FROM {new} "
                                 f"GROUP BY project_id, {client}")
    for child in _present(conn, EVENT_CHILDREN):
        conn.exec_driver_sql(f"ALTER TABLE {child} DROP CONSTRAINT IF EXISTS {child}_event_id_fkey")
    for spec in reversed(tables):  # children first: nothing else refers to them
        _swap(conn, spec, partitioned=True)
    return copied


REPEATED = "repeated client ids dropped"


def repeated_client_ids(conn: Connection) -> int:
    """How many rows converting to plain would drop as later copies of a client id (one read of each table)."""
    total = 0
    for spec in _tables(conn):
        if spec.local_unique is not None:
            cols = ", ".join(spec.local_unique[1])
            total += int(conn.exec_driver_sql(
                f"SELECT count(*) - count(DISTINCT ({cols})) FROM {spec.name}").scalar_one())
    return total


def _drop_repeated_ids(conn: Connection, tables: list[PartitionedTable]) -> int:
    """Partitioned storage keeps a client id unique within a partition (schema.py); an id resent with an explicit
    timestamp in another partition is stored again there. The plain shape's key is the id alone: keep each id's
    first stored row (lowest id) and delete the later ones, with what was derived from those events."""
    dropped = 0
    for spec in tables:
        if spec.local_unique is None:
            continue
        cols = ", ".join(spec.local_unique[1])
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE _repeated_{spec.name} ON COMMIT DROP AS SELECT id FROM (SELECT id, row_number() "
            f"OVER (PARTITION BY {cols} ORDER BY id) AS n FROM {spec.name}) r WHERE n > 1")
        if spec.name == "events":
            for child in _present(conn, EVENT_CHILDREN):
                conn.exec_driver_sql(f"DELETE FROM {child} WHERE event_id IN (SELECT id FROM _repeated_events)")
        dropped += conn.exec_driver_sql(
            f"DELETE FROM {spec.name} WHERE id IN (SELECT id FROM _repeated_{spec.name})").rowcount
    return dropped


def to_plain(conn: Connection, progress: Progress = lambda _m: None,
             lock_timeout_ms: int | None = None) -> dict[str, int]:
    """Partitioned -> plain (the migration's downgrade, `driftloop partitions convert --to plain`), copying beside
    the live tables and swapping at the end as `to_partitioned` does. Returns rows copied per table."""
    _lock(conn, lock_timeout_ms)
    copied: dict[str, int] = {}
    tables = _tables(conn)
    repeated = _drop_repeated_ids(conn, tables)
    for spec in tables:
        _build(conn, spec, partitioned=False)
        copied[spec.name] = _copy(conn, spec, f"SELECT o.* FROM {spec.name} o", progress)
    if repeated:
        copied[REPEATED] = repeated
    for spec in reversed(tables):
        _swap(conn, spec, partitioned=False)  # the partitioned table goes with its partitions
        if spec.keys_table:
            conn.exec_driver_sql(f"DROP TABLE {spec.keys_table}")
    for child in _present(conn, EVENT_CHILDREN):
        conn.exec_driver_sql(f"ALTER TABLE {child} ADD CONSTRAINT {child}_event_id_fkey FOREIGN KEY (event_id) "
                             "REFERENCES events (id) ON DELETE CASCADE")
    return copied
