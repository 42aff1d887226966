"""What one event costs each component, in CPU time and bytes: the figures docs/scaling.md sizes a deployment with.

    python bench/cost_per_event.py [--events 60000] [--producers 3] [--collector-workers 2] [--texts 512]
                                   [--window-events 60000] [--only ingest|embed|stages]

Wall-clock throughput on a shared machine says more about the neighbours than about driftloop; CPU time charged
to driftloop's own processes does not (much). So this script counts CPU seconds (user + system, from /proc) of:
  * the collector: `driftloop serve` and its worker processes, while SDK producers (bench/ingest.py's) post
    `--events` events to a fresh Postgres database;
  * Postgres: the backends connected to that database (the collector's pool) over the same interval. Postgres'
    shared background processes (WAL writer, checkpointer, autovacuum) also work for other databases on the
    server, so they are left out: the figure is a lower bound for Postgres;
  * the window stages (ops, drift, safety) recomputing a window of `--window-events` events, as a worker does
    every DRIFTLOOP_RECOMPUTE_INTERVAL_SECONDS while it is open (bench/window_stages.py's window), with the
    Postgres backend they read through;
  * the embedder (all-MiniLM-L6-v2, the drift and safety stages' model) encoding `--texts` distinct texts on one
    thread (torch's threads spin while they wait for each other, which a loaded machine turns into CPU time);
and the bytes each stored event takes on disk (the events table with its indexes and TOAST, after ANALYZE).
Prints per-event costs and what they mean in cores per 1,000 events/s. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import ADMIN, free_port, producer, wait_for_collector  # noqa: E402
from monitor import migrations  # noqa: E402
from monitor.demo.traffic import TOPICS, prompts  # noqa: E402
from monitor.projects.service import create_key  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one live process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15 of stat)


def descendants(root: int) -> set[int]:
    """`root` and every process below it (uvicorn's workers are spawned children)."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
    found, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        kids = [c for c, p in parent.items() if p == pid and c not in found]
        found.update(kids)
        frontier.extend(kids)
    return found


def backends(db_url: str, name: str) -> set[int]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                            (name,)).fetchall()
    return {int(r[0]) for r in rows}


class Meter:
    """CPU seconds spent by a changing set of processes between `start` and `stop` (new ones count from zero)."""

    def __init__(self) -> None:
        self.before: dict[int, float] = {}
        self.after: dict[int, float] = {}

    def start(self, pids: set[int]) -> None:
        self.before = {p: cpu_seconds(p) for p in pids}

    def stop(self, pids: set[int]) -> float:
        self.after = {p: cpu_seconds(p) for p in pids | set(self.before)}
        return sum(self.after[p] - self.before.get(p, 0.0) for p in self.after if self.after[p] > 0)


def ingest_costs(args: argparse.Namespace) -> dict[str, float]:
    name = "driftloop_bench_cost"
    plain = ADMIN.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    db_url = ADMIN.rsplit("/", 1)[0] + f"/{name}"
    pg_url = db_url.replace("postgresql+psycopg", "postgresql")
    migrations.upgrade(db_url)
    from sqlalchemy.orm import Session

    from monitor.db import make_engine

    engine = make_engine(db_url)
    with Session(engine) as s:
        key = create_key(s, "bench", scopes="ingest")
        s.commit()
    engine.dispose()
    port = free_port()
    log = Path(tempfile.mkdtemp()) / "collector.log"
    collector = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "serve", "--no-migrate", "--port", str(port), "--log-level", "warning",
         "--workers", str(args.collector_workers)],
        env={**os.environ, "DRIFTLOOP_DATABASE_URL": db_url}, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_collector(url, log)
        per = args.events // args.producers
        ctx = mp.get_context("spawn")
        out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
        start_at = time.time() + 5.0  # producers import and warm up first; the meters start just before
        procs = [ctx.Process(target=producer, args=(url, key.key, per, i, args.batch_size, start_at, out))
                 for i in range(args.producers)]
        for p in procs:
            p.start()
        time.sleep(max(0.0, start_at - time.time() - 0.5))
        collector_meter, postgres_meter = Meter(), Meter()
        collector_meter.start(descendants(collector.pid))
        postgres_meter.start(backends(pg_url, name))
        began = time.monotonic()
        results = [out.get(timeout=1800) for _ in procs]
        wall = time.monotonic() - began
        collector_cpu = collector_meter.stop(descendants(collector.pid))
        postgres_cpu = postgres_meter.stop(backends(pg_url, name))
        for p in procs:
            p.join()
        total = per * args.producers
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("ANALYZE events")
            row = conn.execute("SELECT count(*), count(DISTINCT client_event_id), pg_total_relation_size('events') "
                               "FROM events").fetchone()
        assert row is not None
        if row[0] != total or row[1] != total or not all(r[1] for r in results):
            raise SystemExit(f"FAILED: logged {total}, stored {row[0]} ({row[1]} distinct)")
        return {"events": total, "wall": wall, "collector_cpu": collector_cpu, "postgres_cpu": postgres_cpu,
                "bytes": row[2]}
    finally:
        collector.terminate()
        collector.wait(timeout=30)


def embed_costs(n: int) -> dict[str, float]:
    from monitor.embeddings import get_embedder

    texts: dict[str, None] = {}
    seed = 0
    while len(texts) < n + 64:
        for topic in TOPICS:
            for t in prompts(topic, 200, seed):
                texts.setdefault(t, None)
        seed += 1
    unique = list(texts)
    import torch

    # One thread: CPU time per text without OpenMP's spin-waiting, which inflates a multi-threaded figure when
    # other jobs take the cores. Workers scale by processes, so per-core throughput is what sizing needs.
    torch.set_num_threads(1)
    embedder = get_embedder(device="cpu")
    embedder.encode(unique[:64])  # load and warm outside the figures
    cpu, began = time.process_time(), time.perf_counter()  # process_time: CPU of every torch thread
    embedder.encode(unique[64:64 + n])
    return {"texts": n, "cpu": time.process_time() - cpu, "wall": time.perf_counter() - began}


def stage_costs(n: int, segments: int) -> dict[str, float]:
    """CPU per event of each window stage recomputing a window (everything embedded and scored already): this
    process (one torch thread) plus the Postgres backend it reads through. bench/window_stages.py's window."""
    import torch
    from sqlalchemy.orm import Session

    from bench.faults.common import fresh_database, servers
    from bench.window_stages import STAGES, seed, timed
    from monitor.db import make_engine
    from monitor.settings import environment

    torch.set_num_threads(1)
    out: dict[str, float] = {}
    with servers() as (admin, _redis), fresh_database(admin, "cost_stages") as url, \
            environment({"DRIFTLOOP_DATABASE_URL": url, "DRIFTLOOP_DEVICE": "cpu"}):
        engine = make_engine(url)
        with Session(engine) as s:
            pid = seed(s, n, segments)
        for stage in STAGES:  # the first computation embeds and scores the samples: not what is measured
            timed(engine, stage, pid)
        pg_url, name = url.replace("postgresql+psycopg", "postgresql"), url.rsplit("/", 1)[1].split("?")[0]
        for stage in STAGES:
            meter = Meter()
            meter.start(backends(pg_url, name))
            cpu = time.process_time()
            timed(engine, stage, pid)
            out[stage] = (time.process_time() - cpu + meter.stop(backends(pg_url, name))) / n
        engine.dispose()
    return out


def report_stages(args: argparse.Namespace) -> None:
    costs = stage_costs(args.window_events, args.segments)
    print(f"window stages, recomputing one window of {args.window_events:,} events ({args.segments} locales; "
          "this process on one thread + its Postgres backend):")
    for stage, seconds in costs.items():
        print(f"  {stage:<8} {seconds * 1e6:7.1f} µs/event per recomputation")
    print(f"  total    {sum(costs.values()) * 1e6:7.1f} µs/event per recomputation")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--producers", type=int, default=3)
    ap.add_argument("--collector-workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=2000)
    ap.add_argument("--texts", type=int, default=512, help="Distinct texts the embedder encodes.")
    ap.add_argument("--window-events", type=int, default=60_000, help="Events in the stages' window.")
    ap.add_argument("--segments", type=int, default=3, help="Distinct `locale` values in the stages' window.")
    ap.add_argument("--only", choices=("ingest", "embed", "stages"), default=None, help="Measure one part only.")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    if args.only in (None, "ingest"):
        report_ingest(args)
    if args.only in (None, "embed"):
        report_embed(args)
    if args.only in (None, "stages"):
        report_stages(args)
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def report_ingest(args: argparse.Namespace) -> None:
    ing = ingest_costs(args)
    n = ing["events"]
    col_us, pg_us = ing["collector_cpu"] / n * 1e6, ing["postgres_cpu"] / n * 1e6
    print(f"ingest: {n:,.0f} events in {ing['wall']:.1f} s wall ({n / ing['wall']:,.0f} events/s on this machine now); "
          f"batch {args.batch_size}, {args.collector_workers} collector workers")
    print(f"  collector CPU      {col_us:7.1f} µs/event  -> {col_us / 1000:.3f} cores per 1,000 events/s")
    print(f"  Postgres CPU       {pg_us:7.1f} µs/event  -> {pg_us / 1000:.3f} cores per 1,000 events/s "
          "(its backends only)")
    print(f"  Postgres disk      {ing['bytes'] / n:7.0f} B/event   -> {ing['bytes'] / n * 86400 * 1000 / 1e9:.1f} GB "
          "per day at 1,000 events/s (events table + indexes + TOAST)")


def report_embed(args: argparse.Namespace) -> None:
    emb = embed_costs(args.texts)
    per_text = emb["cpu"] / emb["texts"] * 1e3
    print(f"embedding: {emb['texts']} distinct texts, {per_text:.2f} CPU-ms/text "
          f"({emb['texts'] / emb['wall']:.0f} texts/s wall on one thread now)")


if __name__ == "__main__":
    main()
