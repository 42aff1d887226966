"""Ingestion throughput, producers → collector → Postgres, as a share of raw COPY measured in the same run.

    python bench/ingest.py [--events 240000] [--producers 3] [--collector-workers 2] [--batch-size 2000]
                           [--producer preencoded|sdk] [--pii] [--no-baseline] [--repeat N]

Starts a collector in its own process (`driftloop serve`) on a fresh Postgres database, then `--producers`
processes send their share of events as fast as they can. `--producer preencoded` (the default) posts gzip
batches encoded once by the SDK's encoder, with fresh event ids patched in as bytes (bench/ingest_load.py), so
the producers cost the collector almost nothing; `--producer sdk` logs every event through the real SDK,
timing every `log()` call. Reports sustained events/s (first post or `log()` to the last row committed, counted
in Postgres), checks that every event was stored exactly once, and before the collector starts measures plain
`COPY` of the same number of rows into an events-shaped table with the events' unique index on the same
database: the collector's events/s is printed as a share of that (target >= 50%). Also prints the collector's CPU
per event (user + system of all its processes from /proc, from the first post to the last answer), which moves
far less with other jobs on the machine than events/s does. Both timed phases start right after a CHECKPOINT, the
producers build their bodies before the clock starts (as the baseline builds its rows), and the collector runs with
the per-key rate limits raised out of the way (a policy, not a capacity; `DRIFTLOOP_RATE_LIMIT_*` in the
environment overrides that); a run that still got 429/503 answers prints them.

`--pii`: two runs back to back on the same traffic, collector PII redaction off (DRIFTLOOP_PII_REDACTION=false)
then on (the default detectors), with one prompt in five carrying an e-mail address, a phone number and a card
number; reports the share of throughput redaction keeps.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest_load import PII_SUFFIX, bench_texts, copy_baseline, preencoded_producer
from monitor import migrations
from monitor.db import make_engine
from monitor.projects.service import create_key, get_project
from tests.support.services import drop_database, recreate_database


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


ADMIN = os.environ.get("DRIFTLOOP_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")

__all__ = ["PII_SUFFIX", "producer"]


def producer(url: str, key: str, n: int, offset: int, batch: int, start_at: float, out: mp.Queue,  # type: ignore[type-arg]
             rate: float | None = None, pii: bool = False) -> None:
    """One app process: logs `n` events through the real SDK, as fast as it can or at `rate` events/s, timing
    every `log()`; puts (timings ns, flushed, sent, dropped by a full queue, seconds to drain after the last
    log()) on `out`. Also used by bench/load.py."""
    from monitor.sdk import Client

    texts = bench_texts(offset, pii)
    client = Client(url, key, batch_size=batch, flush_interval=0.05, max_queue=max(200_000, n), spool_dir=False,
                    timeout=30)
    timings = np.empty(n, dtype=np.int64)
    clock = time.perf_counter_ns
    while time.time() < start_at:
        time.sleep(0.001)
    begin = time.monotonic()
    for i in range(n):
        if rate and i % 200 == 0:  # paced in small steps: an app sends steadily, not in one burst
            pause = begin + i / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        text = texts[i % len(texts)]
        t = clock()
        client.log(text, "Happy to help with that.", model="smollm2-135m", model_version="v1",
                   latency_ms=120.0, prompt_tokens=12, completion_tokens=6, metadata={"locale": "en"})
        timings[i] = clock() - t
    last = time.monotonic()
    ok = client.flush(timeout=600)
    drained = time.monotonic() - last
    stats = client.stats
    client.close(timeout=5)
    out.put((timings, ok, stats.sent, stats.dropped_queue_full, drained))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=240_000)
    ap.add_argument("--producers", type=int, default=3)
    ap.add_argument("--collector-workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=2000)
    ap.add_argument("--producer", choices=("preencoded", "sdk"), default="preencoded",
                    help="pre-encoded batches (cheap producers) or the real SDK (times every log())")
    ap.add_argument("--no-gzip", action="store_true", help="pre-encoded bodies sent uncompressed")
    ap.add_argument("--no-baseline", action="store_true", help="skip the COPY baseline")
    ap.add_argument("--all-index-baseline", action="store_true",
                    help="also time COPY into a table with every index and key events has (metadata GIN, ...): the "
                    "like-with-like baseline for the collector's own write")
    ap.add_argument("--pii", action="store_true", help="redaction off vs on, same traffic, same run")
    ap.add_argument("--profile", metavar="FILE", help="record the collector with py-spy (on PATH) into FILE "
                    "(raw collapsed stacks, every collector process)")
    ap.add_argument("--repeat", type=int, default=1, metavar="N",
                    help="N measurements in a row (each its own database, baseline and collector), then every share "
                    "and their mean and median: single runs on two shared cores move by several points")
    args = ap.parse_args()
    if not args.pii:
        shares = []
        for i in range(args.repeat):
            rate, copy_rate = run(args, {}, label=f"run {i + 1} of {args.repeat}" if args.repeat > 1 else "")
            if copy_rate:
                shares.append(rate / copy_rate)
        if len(shares) > 1:
            print(f"\ncollector as a share of raw COPY over {len(shares)} runs: "
                  + ", ".join(f"{x:.1%}" for x in shares)
                  + f"; mean {np.mean(shares):.1%}, median {np.median(shares):.1%} (target >= 50%)")
        return
    off, _ = run(args, {"DRIFTLOOP_PII_REDACTION": "false"}, pii_traffic=True, label="PII redaction OFF")
    on, _ = run(args, {"DRIFTLOOP_PII_REDACTION": "true"}, pii_traffic=True, label="PII redaction ON")
    print(f"redaction on keeps {on / off:.1%} of the throughput ({on:,.0f} vs {off:,.0f} events/s; target >= 70%)")


def wait_for_collector(url: str, log: Path, timeout: float = 300) -> None:
    """Until the collector answers its health check (a loaded machine can take minutes to start it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise SystemExit(f"collector did not start: {log.read_text()}") from None
        time.sleep(0.1)


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and all its live descendants: the collector's uvicorn workers."""
    total = 0.0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{p}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):  # exited meanwhile
            continue
    return total


def collect(out: mp.Queue, procs: list[Any]) -> list[Any]:  # type: ignore[type-arg]
    """Each producer's result; stops at once if a producer died without one."""
    results: list[Any] = []
    while len(results) < len(procs):
        try:
            results.append(out.get(timeout=1))
        except queue.Empty:
            if any(p.exitcode not in (None, 0) for p in procs):
                raise SystemExit("FAILED: a producer exited with an error (its traceback is above)") from None
    for p in procs:
        p.join()
    return results


def checkpoints(db_url: str, *, now: bool = False) -> int:
    """Checkpoints the server has started so far; with `now`, after one run first. Each timed phase starts right
    after a checkpoint, so that neither pays for the other's writes: 600,000 events write most of `max_wal_size`
    (1 GB by default), so a checkpoint could otherwise start inside either phase; the run says whether one did."""
    with psycopg.connect(db_url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        if now:
            conn.execute("CHECKPOINT")
        row = conn.execute("SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter").fetchone()
    return int(row[0]) if row else 0


def run(args: argparse.Namespace, extra_env: dict[str, str], pii_traffic: bool = False,
        label: str = "") -> tuple[float, float | None]:
    """One measurement on a fresh database; returns sustained events/s and raw COPY rows/s (None without it)."""
    if label:
        print(f"--- {label}")
    name = f"driftloop_bench_ingest_{os.getpid()}"  # its own: two benches at once must not share a database
    db_url = recreate_database(ADMIN, name)
    migrations.upgrade(db_url)
    engine = make_engine(db_url)
    from sqlalchemy.orm import Session

    with Session(engine) as s:
        key = create_key(s, "bench", scopes="ingest")  # an application's key: it only sends events
        s.commit()
        bench_project = get_project(s, "bench").id
    load_at_start = os.getloadavg()[0]
    baselines: list[tuple[str, float]] = []
    baseline_checkpoints = 0
    if not args.no_baseline:  # the same machine, database and minute as the collector run below
        project_id = bench_project  # in a table of its own, dropped afterwards
        per_batch = args.batch_size
        baseline_checkpoints = checkpoints(db_url, now=True)
        baselines.append(("raw COPY, unique index only", copy_baseline(db_url, project_id, args.events, per_batch)))
        baseline_checkpoints = checkpoints(db_url) - baseline_checkpoints
        if args.all_index_baseline:
            baselines.append(("raw COPY, every index and key of events",
                              copy_baseline(db_url, project_id, args.events, per_batch, all_indexes=True)))

    port = free_port()
    log = Path(tempfile.mkdtemp()) / "collector.log"
    # The per-key limits (50,000 items and 50 requests a second by default, per collector process without Redis)
    # are a policy, not the capacity measured here: three producers on one key above them were answered 429 and
    # slept out the Retry-After, so such a run measured the limiter. They are raised far above any rate here (the
    # limiter still runs); the environment wins.
    limits = {f"DRIFTLOOP_RATE_LIMIT_{name}": "1000000000"
              for name in ("EVENTS_PER_SECOND", "EVENTS_BURST", "PER_SECOND", "BURST")}
    env = {**limits, **os.environ, "DRIFTLOOP_DATABASE_URL": db_url, **extra_env}
    wrap: list[str] = []
    if args.profile:
        spy = shutil.which("py-spy")
        if spy is None:
            raise SystemExit("--profile needs py-spy on PATH")
        wrap = [spy, "record", "--subprocesses", "--nonblocking", "-r", "50", "-f", "raw", "-o", args.profile, "--"]
    collector = subprocess.Popen(
        [*wrap, sys.executable, "-m", "monitor.cli", "serve", "--no-migrate", "--port", str(port),
         "--log-level", "warning", "--workers", str(args.collector_workers)],
        env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_collector(url, log)

        per = args.events // args.producers
        total = per * args.producers
        ctx = mp.get_context("spawn")
        out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
        # Producers import, build their bodies (~0.6 µs an event) and warm up first, then start together.
        start_at = time.time() + 3.0 + args.events / 500_000
        if args.producer == "sdk":
            procs = [ctx.Process(target=producer, args=(url, key.key, per, i, args.batch_size, start_at, out, None,
                                                        pii_traffic)) for i in range(args.producers)]
        else:
            procs = [ctx.Process(target=preencoded_producer, args=(url, key.key, per, i, args.batch_size, start_at,
                                                                   out, pii_traffic, not args.no_gzip))
                     for i in range(args.producers)]
        checkpoints_before = checkpoints(db_url, now=True)
        cpu_before = tree_cpu(collector.pid)  # after start-up: only the requests' CPU is counted
        for p in procs:
            p.start()
        results = collect(out, procs)
        done = time.time()
        collector_cpu = tree_cpu(collector.pid) - cpu_before
        checkpoints_during = checkpoints(db_url) - checkpoints_before
        with psycopg.connect(db_url.replace("postgresql+psycopg", "postgresql")) as conn:
            stored = conn.execute("SELECT count(*), count(DISTINCT client_event_id) FROM events").fetchone()
        assert stored is not None
        elapsed = done - start_at
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
              f"PostgreSQL via {db_url.split('@')[-1]}, load average at start {load_at_start:.1f}")
        print(f"producer {args.producer}, producers {args.producers}, collector workers {args.collector_workers}, "
              f"batch {args.batch_size}")
        if args.producer == "sdk":
            timings = np.concatenate([r[0] for r in results]) / 1000.0
            print(f"events logged {total:,}; stored {stored[0]:,} ({stored[1]:,} distinct); "
                  f"flushed {'yes' if all(r[1] for r in results) else 'NO'}; "
                  f"dropped (queue full) {sum(r[3] for r in results)}")
        else:
            retried = Counter(answer for r in results for answer in r[3])
            print(f"events posted {sum(r[0] for r in results):,}; accepted {sum(r[1] for r in results):,}; "
                  f"stored {stored[0]:,} ({stored[1]:,} distinct); requests retried after 429/503 "
                  f"{sum(retried.values())}; producers built bodies for {sum(r[4] for r in results):.2f} s")
            for answer, count in retried.most_common():  # each retry sleeps its Retry-After: slow runs say why
                print(f"  retried {count}x after: {answer}")
        rate = total / elapsed
        print(f"sustained throughput: {rate:,.0f} events/s over {elapsed:.1f} s (first send → committed rows; "
              f"{checkpoints_during} checkpoint(s) started during it)")
        print(f"collector CPU: {collector_cpu / total * 1e6:.1f} µs per event (user + system, all its processes; "
              "much less sensitive to other jobs than events/s)")
        if args.producer == "sdk":
            print(f"log() overhead µs: p50 {np.percentile(timings, 50):.2f}  p99 {np.percentile(timings, 99):.2f}  "
                  f"p99.9 {np.percentile(timings, 99.9):.2f}  max {timings.max():.0f}")
        for label, copy_rate in baselines:
            print(f"{label}: {copy_rate:,.0f} rows/s ({baseline_checkpoints} checkpoint(s) started during the first); "
                  f"collector = {rate / copy_rate:.1%} of it"
                  + (" (target >= 50%)" if label.startswith("raw COPY, unique index") else ""))
        if stored[0] != total or stored[1] != total:
            raise SystemExit("FAILED: stored count differs from logged count")
        # The full-text vectors are written after ingestion (monitor/events/indexing.py), by the worker: their
        # cost left the hot path, not the machine, so it is timed here too (single process, as beat runs it).
        from sqlalchemy.orm import sessionmaker

        from monitor.events.indexing import index_pending

        t0 = time.perf_counter()
        indexed = index_pending(sessionmaker(engine), max_batches=10_000)
        took = time.perf_counter() - t0
        print(f"search indexing afterwards (the worker's job): {indexed.rows:,} events in {took:.1f} s, "
              f"{indexed.rows / took:,.0f} events/s")
        if pii_traffic:
            with psycopg.connect(db_url.replace("postgresql+psycopg", "postgresql")) as conn:
                raw = conn.execute("SELECT count(*) FROM events WHERE prompt LIKE '%4111 1111%'").fetchone()
            print(f"events storing the raw card number: {raw[0] if raw else '?'}")
        return rate, (baselines[0][1] if baselines else None)
    finally:
        if args.profile:  # stop the server under py-spy; py-spy then writes its file and exits
            with open(f"/proc/{collector.pid}/task/{collector.pid}/children") as f:
                for child in f.read().split():
                    os.kill(int(child), signal.SIGTERM)
        else:
            collector.terminate()
        collector.wait(timeout=60)
        engine.dispose()
        drop_database(ADMIN, name)


if __name__ == "__main__":
    main()
