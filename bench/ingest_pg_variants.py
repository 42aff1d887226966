"""Postgres's CPU per event of the collector's write, for variants of the events schema side by side.

    python bench/ingest_pg_variants.py BATCHES VARIANT[,VARIANT...]   (DRIFTLOOP_PARTITION_INTERVAL=off: plain)

Each variant gets a fresh database migrated to head, then the SQL of `VARIANTS` below (an index dropped, made
partial or BRIN, ...); `direct` keeps the schema and COPYs straight into today's partition instead of the parent
(no tuple routing); `claim_all` claims every id in the keys table (DRIFTLOOP_PARTITION_CLAIM_ALL_IDS, the only
way before revision 0017). Batches of 2,000 bench events (bench/ingest_load.py texts, `ingest_events`'s own write,
`_copy_insert`, each batch committed) go to every database in turn, round-robin with the order rotated per
batch, so table growth and the machine's load fall on all variants alike. The backend's utime+stime is read
from /proc around each batch (the server must run on this machine; 10 ms ticks, so use 100+ batches).
docs/scaling.md ("Fifth round") has the figures.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cost_per_event import cpu_seconds
from bench.ingest_load import bench_texts
from monitor import migrations
from monitor.db import utcnow
from monitor.ingest.service import _EVENT_COLUMNS, _copy_insert, _event_row
from monitor.schemas import EventIn
from tests.support.services import drop_database, recreate_database

ADMIN = os.environ.get("DRIFTLOOP_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
VARIANTS: dict[str, list[str]] = {
    "head": [],
    "direct": [],  # the same schema; COPY into today's partition
    "full_session_index": ["DROP INDEX ix_events_project_session",
                           "CREATE INDEX ix_events_project_session ON events (project_id, session_id)"],
    "no_session_index": ["DROP INDEX ix_events_project_session"],
    "ids_collate_c": ['ALTER TABLE events ALTER COLUMN client_event_id TYPE varchar(128) COLLATE "C"',
                      'ALTER TABLE event_keys ALTER COLUMN client_event_id TYPE varchar(128) COLLATE "C"'],
    "received_brin": ["DROP INDEX ix_events_project_received",
                      "CREATE INDEX ix_events_received_brin ON events USING brin (received_at)"],
    "keys_ts_brin": ["DROP INDEX ix_event_keys_ts", "CREATE INDEX ix_event_keys_ts ON event_keys USING brin (ts)"],
    "no_metadata_gin": ["DROP INDEX ix_events_metadata"],
    "no_project_ts": ["DROP INDEX ix_events_project_ts"],
    "no_keys_ts_index": ["DROP INDEX ix_event_keys_ts"],
    "claim_all": [],  # the same schema; every id claimed in event_keys (DRIFTLOOP_PARTITION_CLAIM_ALL_IDS)
}
SIZE = 2000


def main() -> None:
    batches, chosen = int(sys.argv[1]), sys.argv[2].split(",")
    if len(set(chosen)) != len(chosen) or not set(chosen) <= VARIANTS.keys():
        raise SystemExit(f"variants: distinct names from {', '.join(VARIANTS)}")
    dbs: dict[str, tuple[str, psycopg.Connection]] = {}
    try:
        for v in chosen:
            name = f"driftloop_bench_pgvar_{v}_{os.getpid()}"[:63]
            url = recreate_database(ADMIN, name)
            migrations.upgrade(url)
            conn = psycopg.connect(url.replace("postgresql+psycopg", "postgresql"))
            dbs[v] = (name, conn)
            for sql in VARIANTS[v]:
                try:
                    conn.execute(sql)
                    conn.commit()
                except psycopg.errors.UndefinedTable:  # event_keys: plain tables have none
                    conn.rollback()
        texts = bench_texts(0, False)
        template = [EventIn(event_id="x", prompt=texts[i % len(texts)], response="Happy to help with that.",
                            model="smollm2-135m", model_version="v1", latency_ms=120.0, prompt_tokens=12,
                            completion_tokens=6, metadata={"locale": "en"}) for i in range(SIZE)]
        backend = {v: int(c.execute("SELECT pg_backend_pid()").fetchone()[0]) for v, (_, c) in dbs.items()}  # type: ignore[index]
        partitioned = {v: bool(c.execute("SELECT count(*) FROM pg_partitioned_table").fetchone()[0])  # type: ignore[index]
                       for v, (_, c) in dbs.items()}
        keys = {v: "event_keys" if partitioned[v] else None for v in dbs}
        spent = dict.fromkeys(chosen, 0.0)
        for b in range(batches):
            now = utcnow()
            stamped = now - timedelta(milliseconds=5)  # the client's timestamp, as the SDK sends one
            rows = [(1, f"e{b * SIZE + j}", stamped, now, *_event_row(1, e, now)[4:]) for j, e in enumerate(template)]
            for v in chosen[b % len(chosen):] + chosen[:b % len(chosen)]:
                conn = dbs[v][1]
                table = f"events_p{now:%Y%m%d}" if v == "direct" else "events"
                c0 = cpu_seconds(backend[v])
                assert _copy_insert(conn, table, _EVENT_COLUMNS, rows, ("project_id", "client_event_id"),
                                    keys[v], claim_all_ids=v == "claim_all") == SIZE
                conn.commit()
                spent[v] += cpu_seconds(backend[v]) - c0
        shape = "plain" if os.environ.get("DRIFTLOOP_PARTITION_INTERVAL") == "off" else "partitioned"
        print(f"{shape}, {batches} batches of {SIZE:,} per variant, load {os.getloadavg()[0]:.1f}; "
              "Postgres backend CPU per event:")
        for v in chosen:
            print(f"  {v:<20} {spent[v] / (batches * SIZE) * 1e6:6.2f} us")
    finally:
        for name, conn in dbs.values():
            conn.close()
            drop_database(ADMIN, name)


if __name__ == "__main__":
    main()
