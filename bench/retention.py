"""Retention of many events on the real Postgres: whole-partition drop vs batched DELETE, with ingest latency.

    python bench/retention.py [--events 10000000] [--days 30] [--keep-days 15] [--batch-size 5000] [--mode both]

For each mode, a fresh database is migrated (`partition`: DRIFTLOOP_PARTITION_INTERVAL=day, the default, so the
first migration builds daily partitions; `delete`: `off`, plain tables), filled by SQL (`generate_series`, not
the API: filling is not what is measured) with `--events` events spread evenly over the last `--days` days,
vacuumed, and then retention keeps `--keep-days` (so about half the rows expire). While retention runs, an
ingest loop posts batches of 100 events to a real collector (`driftloop serve` in its own process, rate limits
off) over HTTP, one request in flight, back to back; each request's latency (sent → 200 with the rows
committed) is measured for `--baseline-seconds` before retention (the baseline, same loop, same database) and
during it. Prints, per mode: rows removed, retention wall time, ingest requests and p50/p99/max latency before
and during, and the database size before/after. The GIN indexes (full text, metadata) are built after the
fill, as on a real database.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest import free_port, wait_for_collector
from monitor import migrations
from monitor.db import make_engine, run_unit, utcnow
from monitor.partitions.service import ensure_partitions
from monitor.projects.service import create_key
from monitor.retention.service import apply_retention
from monitor.settings import reset_settings_cache

ADMIN = os.environ.get("DRIFTLOOP_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
CHUNK = 1_000_000
_ENV = threading.Lock()  # the fills run side by side; each migration reads the environment
# About 300 bytes of text per event, varied enough that the full-text index has a realistic vocabulary: a support
# question and a two-sentence answer with per-event numbers in them. (Longer texts are closer to some apps, but
# the full-text index build, not what is measured, then takes over half an hour per 10 M events here.)
PROMPT = ("'I cannot reset the password for account ' || g || ' in region eu-' || g % 17 || "
          "': the verification e-mail never arrives and session ' || g % 9973 || ' expired.'")
RESPONSE = ("'Open Settings, choose Security, then Reset password; the e-mail can take ' || g % 15 || "
            "' minutes and may land in spam. Ticket ' || g % 100003 || ' has the manual steps.'")


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
        conn.execute("DROP INDEX ix_event_search_tsv; DROP INDEX ix_events_metadata")
        for lo in range(1, n + 1, CHUNK):
            hi = min(n, lo + CHUNK - 1)
            rows = (f"INSERT INTO events (project_id, client_event_id, ts, received_at, model, prompt, response, "
                    f"latency_ms, metadata) SELECT 1, 'fill-' || g, now() - make_interval(secs => g * {span / n}), "
                    f"now(), 'gpt-x', {PROMPT}, {RESPONSE}, g % 2000, jsonb_build_object('tier', g % 3, 'route', "
                    f"'support-' || g % 40) FROM generate_series({lo}, {hi}) g")
            if partitioned:  # the dedupe keys are part of what partitioned storage keeps per event
                rows = (f"WITH ins AS ({rows} RETURNING project_id, client_event_id, ts) "
                        "INSERT INTO event_keys SELECT * FROM ins")
            conn.execute(rows)
            print(f"  filled {hi:,}/{n:,} ({time.monotonic() - started:.0f} s)", flush=True)
        # the search indexer's rows (monitor/events/indexing.py), as migration 0015 writes them
        conn.execute("INSERT INTO event_search (event_id, project_id, tsv, event_ts) SELECT id, project_id, "
                     "to_tsvector('english'::regconfig, (COALESCE(prompt, ''::text) || ' '::text) "
                     "|| COALESCE(response, ''::text)), ts FROM events")
        conn.execute("INSERT INTO event_search_state (id, indexed_through, safe_through) "
                     "SELECT 1, max(id), max(id) FROM events")
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("CREATE INDEX ix_event_search_tsv ON event_search USING gin (tsv)")
        conn.execute("CREATE INDEX ix_events_metadata ON events USING gin (metadata jsonb_path_ops)")
        conn.execute("VACUUM ANALYZE")
    return time.monotonic() - started


def size(url: str) -> str:
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        return str(conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0])  # type: ignore[index]


class IngestLoop(threading.Thread):
    """Posts batches of 100 fresh events (timestamp: now) to the collector, back to back, timing each request."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120)
        self.stop = threading.Event()
        self.marks: list[tuple[float, float]] = []  # (start, seconds)
        self.n = 0
        self.failed = 0

    def run(self) -> None:
        while not self.stop.is_set():
            body = {"events": [{"event_id": f"live-{self.n + i}", "prompt": "live prompt", "response": "ok"}
                               for i in range(100)]}
            t0 = time.perf_counter()
            resp = self.client.post("/v1/events", json=body)
            elapsed = time.perf_counter() - t0
            if resp.status_code != 200:
                self.failed += 1
                continue
            self.marks.append((t0, elapsed))
            self.n += 100
        self.client.close()

    def between(self, a: float, b: float) -> np.ndarray:
        return np.asarray([d for t, d in self.marks if a <= t < b]) * 1000


def start_collector(db_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = Path(tempfile.mkdtemp()) / "collector.log"
    env = {**os.environ, "DRIFTLOOP_DATABASE_URL": db_url, "DRIFTLOOP_RATE_LIMIT_PER_SECOND": "0",
           "DRIFTLOOP_RATE_LIMIT_EVENTS_PER_SECOND": "0", "DRIFTLOOP_RATE_LIMIT_BACKEND": "memory"}
    proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "serve", "--no-migrate", "--port", str(port),
                             "--log-level", "warning", "--workers", "1"],
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_for_collector(url, log)
    return proc, url


def pct(ms: np.ndarray) -> str:
    if not len(ms):
        return "n=0"
    return (f"n={len(ms)} p50={np.percentile(ms, 50):.1f} ms p99={np.percentile(ms, 99):.1f} ms "
            f"max={ms.max():.1f} ms")


def prepare(mode: str, args: argparse.Namespace) -> tuple[str, str, str, float]:
    """A fresh, migrated, filled and vacuumed database for one mode: (name, url, ingest key, fill seconds)."""
    name = f"driftloop_bench_retention_{mode}"
    url = recreate(name)
    partitioned = mode == "partition"
    with _ENV:  # the migration reads the setting: `day` (the default) builds the partitions, `off` keeps plain tables
        os.environ["DRIFTLOOP_PARTITION_INTERVAL"] = "day" if partitioned else "off"
        reset_settings_cache()
        migrations.upgrade(url)
    engine = make_engine(url)
    from sqlalchemy.orm import Session, sessionmaker

    if partitioned:  # ranges for the whole filled period, as beat would have made them day by day
        now = utcnow()
        run_unit(sessionmaker(bind=engine), lambda s: ensure_partitions(
            s, now - timedelta(days=args.days + 1), now + timedelta(days=7), "day"))
    with Session(engine) as s:
        key = create_key(s, "bench", scopes="ingest").key  # project 1, which the fill writes to
        s.commit()
    engine.dispose()
    print(f"[{mode}] filling {args.events:,} events over {args.days} days", flush=True)
    return name, url, key, fill(url, args.events, args.days, partitioned)


def measure(mode: str, url: str, key: str, fill_s: float, args: argparse.Namespace) -> dict[str, object]:
    from sqlalchemy.orm import sessionmaker

    before = size(url)
    load_before = os.getloadavg()
    collector, api = start_collector(url)
    try:
        loop = IngestLoop(api, key)
        loop.start()
        t_base = time.perf_counter()
        time.sleep(args.baseline_seconds)  # the baseline window of the ingest loop (a measurement, not a wait)
        t0 = time.perf_counter()
        engine = make_engine(url)
        report = apply_retention(sessionmaker(bind=engine), days=args.keep_days, batch_size=args.batch_size)
        t1 = time.perf_counter()
        loop.stop.set()
        loop.join()
        engine.dispose()
    finally:
        collector.terminate()
        collector.wait(30)
    base, during = loop.between(t_base, t0), loop.between(t0, t1)
    removed = report.totals.events + report.partition_rows.get("events", 0)
    out: dict[str, object] = {
        "mode": mode, "events": args.events, "removed": removed, "fill_s": round(fill_s, 1),
        "retention_s": round(t1 - t0, 2), "partitions_dropped": len(report.partitions_dropped),
        "delete_batches": report.batches, "size_before": before, "size_after": size(url),
        "ingest_before": pct(base), "ingest_during": pct(during), "ingest_failed": loop.failed,
        "load_before": load_before, "load_after": os.getloadavg(),
        "p99_during_ms": float(np.percentile(during, 99)) if len(during) else None}
    print(f"[{mode}] {out}", flush=True)
    return out


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
    # Both databases are filled first, side by side (the fill is not what is measured, and on a shared machine
    # two fills get more of it than one), then retention is measured on each in turn, the other one idle.
    prepared: dict[str, tuple[str, str, str, float]] = {}
    try:
        with ThreadPoolExecutor(len(modes)) as pool:
            futures = {m: pool.submit(prepare, m, args) for m in modes}
            for m in modes:  # in order; a failed fill raises here
                prepared[m] = futures[m].result()
        results = [measure(m, prepared[m][1], prepared[m][2], prepared[m][3], args) for m in modes]
    finally:
        if not args.keep_databases:
            for m in modes:
                drop(f"driftloop_bench_retention_{m}")
    print()
    print(f"{'mode':<10} {'removed':>11} {'retention':>10} {'ingest p99 before':>18} {'ingest p99 during':>18}")
    for r in results:
        b = r["ingest_before"]
        d = r["ingest_during"]
        print(f"{r['mode']:<10} {r['removed']:>11,} {r['retention_s']:>9.1f}s  {b}\n{'':<33}during: {d}")
    times = [float(r["retention_s"]) for r in results]  # type: ignore[arg-type]
    if len(times) == 2 and times[0]:
        print(f"\nbatched DELETE / partition drop time: {times[1] / times[0]:.1f}x")


if __name__ == "__main__":
    main()
