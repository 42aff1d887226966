"""Retention of many events on the real Postgres: whole-partition drop vs batched DELETE, with ingest latency.

    python bench/retention.py [--events 10000000] [--days 30] [--keep-days 15] [--batch-size 5000] [--mode both]

For each mode, a fresh database is migrated (`partition`: with DRIFTLOOP_PARTITION_INTERVAL=day, so migration
0014 builds daily partitions; `delete`: plain tables), filled by SQL (`generate_series`, not the API: filling is
not what is measured) with `--events` events spread evenly over the last `--days` days, vacuumed, and then
retention keeps `--keep-days` (so about half the rows expire). While retention runs, an ingest loop stores
batches of 100 events through the collector's own service function (`monitor.ingest.service.ingest_events`,
one transaction per batch, as a request does) as fast as it can; its per-batch latency is measured for a few
seconds before retention (the baseline, same loop, same database) and during it. Prints, per mode: rows removed,
retention wall time, ingest batches and p50/p99/max latency before and during, and the table size before/after.
The GIN indexes (full text, metadata) are built after the fill, as on a real database.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor import migrations
from monitor.db import make_engine, run_unit, utcnow
from monitor.ingest.service import ingest_events
from monitor.partitions.service import ensure_partitions
from monitor.retention.service import apply_retention
from monitor.schemas import EventIn
from monitor.settings import reset_settings_cache

ADMIN = os.environ.get("DRIFTLOOP_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
CHUNK = 1_000_000


def recreate(name: str) -> str:
    plain = ADMIN.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return ADMIN.rsplit("/", 1)[0] + f"/{name}"


def drop(name: str) -> None:
    with psycopg.connect(ADMIN.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fill(url: str, n: int, days: int, partitioned: bool) -> float:
    started = time.monotonic()
    plain = url.replace("postgresql+psycopg", "postgresql")
    span = days * 86400.0
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute("INSERT INTO projects (slug, name, config, created_at) VALUES ('bench', 'bench', '{}', now())")
        conn.execute("DROP INDEX ix_events_fts; DROP INDEX ix_events_metadata")
        for lo in range(1, n + 1, CHUNK):
            hi = min(n, lo + CHUNK - 1)
            rows = (f"INSERT INTO events (project_id, client_event_id, ts, received_at, model, prompt, response, "
                    f"latency_ms, metadata) SELECT 1, 'fill-' || g, now() - make_interval(secs => g * {span / n}), "
                    "now(), 'gpt-x', 'How do I reset my password for account ' || g || ' in region ' || g % 17 || '?', "
                    "'Open settings, choose security, then reset; ticket ' || g % 1000 || ' has the steps.', "
                    f"g % 2000, jsonb_build_object('tier', g % 3) FROM generate_series({lo}, {hi}) g")
            if partitioned:  # the dedupe keys are part of what partitioned storage keeps per event
                rows = (f"WITH ins AS ({rows} RETURNING project_id, client_event_id, ts) "
                        "INSERT INTO event_keys SELECT * FROM ins")
            conn.execute(rows)
            print(f"  filled {hi:,}/{n:,} ({time.monotonic() - started:.0f} s)", flush=True)
        conn.execute("CREATE INDEX ix_events_fts ON events USING gin (to_tsvector('english'::regconfig, "
                     "(COALESCE(prompt, ''::text) || ' '::text) || COALESCE(response, ''::text)))")
        conn.execute("CREATE INDEX ix_events_metadata ON events USING gin (metadata jsonb_path_ops)")
        conn.execute("VACUUM ANALYZE")
    return time.monotonic() - started


def size(url: str) -> str:
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        return str(conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0])  # type: ignore[index]


class IngestLoop(threading.Thread):
    """Stores batches of 100 fresh events with the current time, back to back, timing each transaction."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.engine = make_engine(url)
        from sqlalchemy.orm import sessionmaker

        self.factory = sessionmaker(bind=self.engine)
        self.stop = threading.Event()
        self.marks: list[tuple[float, float]] = []  # (start, seconds)
        self.n = 0

    def run(self) -> None:
        while not self.stop.is_set():
            batch = [EventIn(event_id=f"live-{self.n + i}", timestamp=utcnow(), prompt="live prompt", response="ok")
                     for i in range(100)]
            t0 = time.perf_counter()
            run_unit(self.factory, lambda s, b=batch: ingest_events(s, 1, b))  # type: ignore[misc]
            self.marks.append((t0, time.perf_counter() - t0))
            self.n += 100

    def between(self, a: float, b: float) -> np.ndarray:
        return np.asarray([d for t, d in self.marks if a <= t < b]) * 1000


def pct(ms: np.ndarray) -> str:
    if not len(ms):
        return "n=0"
    return (f"n={len(ms)} p50={np.percentile(ms, 50):.1f} ms p99={np.percentile(ms, 99):.1f} ms "
            f"max={ms.max():.1f} ms")


def run_mode(mode: str, args: argparse.Namespace) -> dict[str, object]:
    name = f"driftloop_bench_retention_{mode}"
    url = recreate(name)
    partitioned = mode == "partition"
    os.environ["DRIFTLOOP_PARTITION_INTERVAL"] = "day" if partitioned else "off"
    reset_settings_cache()
    try:
        migrations.upgrade(url)
        if partitioned:  # ranges for the whole filled period, as beat would have made them day by day
            engine = make_engine(url)
            from sqlalchemy.orm import sessionmaker

            now = utcnow()
            run_unit(sessionmaker(bind=engine), lambda s: ensure_partitions(
                s, now - timedelta(days=args.days + 1), now + timedelta(days=7), "day"))
            engine.dispose()
        print(f"[{mode}] filling {args.events:,} events over {args.days} days", flush=True)
        fill_s = fill(url, args.events, args.days, partitioned)
        before = size(url)
        loop = IngestLoop(url)
        loop.start()
        t_base = time.perf_counter()
        time.sleep(args.baseline_seconds)  # the baseline window of the ingest loop (a measurement, not a wait)
        t0 = time.perf_counter()
        engine = make_engine(url)
        from sqlalchemy.orm import sessionmaker

        report = apply_retention(sessionmaker(bind=engine), days=args.keep_days, batch_size=args.batch_size)
        t1 = time.perf_counter()
        loop.stop.set()
        loop.join()
        engine.dispose()
        loop.engine.dispose()
        base, during = loop.between(t_base, t0), loop.between(t0, t1)
        removed = report.totals.events + report.partition_rows.get("events", 0)
        out = {"mode": mode, "events": args.events, "removed": removed, "fill_s": round(fill_s, 1),
               "retention_s": round(t1 - t0, 2), "partitions_dropped": len(report.partitions_dropped),
               "delete_batches": report.batches, "size_before": before, "size_after": size(url),
               "ingest_before": pct(base), "ingest_during": pct(during),
               "p99_during_ms": float(np.percentile(during, 99)) if len(during) else None}
        print(f"[{mode}] {out}", flush=True)
        return out
    finally:
        if not args.keep_databases:
            drop(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30, help="the filled events span this many days, up to now")
    parser.add_argument("--keep-days", type=int, default=15, help="retention period applied (rows older go)")
    parser.add_argument("--batch-size", type=int, default=5000, help="DRIFTLOOP_RETENTION_BATCH_SIZE")
    parser.add_argument("--baseline-seconds", type=float, default=5.0)
    parser.add_argument("--mode", choices=["both", "partition", "delete"], default="both")
    parser.add_argument("--keep-databases", action="store_true")
    args = parser.parse_args()
    modes = ["partition", "delete"] if args.mode == "both" else [args.mode]
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    results = [run_mode(m, args) for m in modes]
    print()
    print(f"{'mode':<10} {'removed':>11} {'retention':>10} {'ingest p99 before':>18} {'ingest p99 during':>18}")
    for r in results:
        b = r["ingest_before"]
        d = r["ingest_during"]
        print(f"{r['mode']:<10} {r['removed']:>11,} {r['retention_s']:>9.1f}s  {b}\n{'':<33}during: {d}")
    if len(results) == 2 and results[0]["retention_s"]:
        print(f"\nbatched DELETE / partition drop time: {results[1]['retention_s'] / results[0]['retention_s']:.0f}x")


if __name__ == "__main__":
    main()
