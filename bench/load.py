"""Sustained load: SDK → collector → Postgres at the benchmark rate for 10 minutes, with the metric workers busy.

    python bench/load.py [--minutes 10] [--rate 20000] [--producers 3] [--collector-workers 2] [--gpu-workers 1]

Producer processes log through the real SDK at `--rate` events/s in total (the paced producer of
bench/ingest.py); the collector runs in its own process(es) (`driftloop serve --workers N`, Prometheus summed
over its workers); Celery beat ticks every `--tick` seconds, one Celery worker serves the `default` queue (ticks,
ops) and `--gpu-workers` the `gpu` queue (embeddings, drift, safety), computing the 5-minute windows on the same
Postgres while ingest goes on. Every
`--sample` seconds it prints: events/s stored, collector p50/p99 latency of POST /v1/events over the interval
(from the collector's own histogram), Postgres database size, worker backlog (Redis queue lengths with this
run's key prefix, tasks taken but unacknowledged, dirty windows), metric rows. At the end: exact stored count
(each event exactly once), anything rejected (must be 0: every event is valid), SDK drops, `log()` p99, and
the load average. Everything runs on this machine, so producers, collector, Postgres and workers share cores.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import queue
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import psycopg  # noqa: E402
import redis  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from bench.faults.common import celery_environment, machine, new_key, servers  # noqa: E402
from bench.ingest import producer  # noqa: E402
from monitor import migrations  # noqa: E402
from monitor.settings import Settings  # noqa: E402
from tests.support import services  # noqa: E402
from tests.support.celery_env import _die_with_parent, kill_worker, start_worker  # noqa: E402
from tests.support.collector import CollectorProcess  # noqa: E402

ROUTE = "/v1/events"


@dataclass
class Scrape:
    buckets: dict[float, float]  # cumulative request counts by upper bound (seconds), POST /v1/events
    statuses: dict[str, float]  # POST /v1/events answers by status
    rejected_items: float  # events the collector refused (validation, size)


def scrape(url: str) -> Scrape:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    buckets: dict[float, float] = {}
    statuses: dict[str, float] = {}
    rejected = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "driftloop_http_request_seconds_bucket" and s.labels.get("route") == ROUTE:
                le = float(s.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + s.value
            elif s.name == "driftloop_http_requests_total" and s.labels.get("route") == ROUTE:
                statuses[s.labels["status"]] = statuses.get(s.labels["status"], 0.0) + s.value
            elif s.name == "driftloop_ingested_items_total" and s.labels.get("outcome") == "rejected":
                rejected += s.value
    return Scrape(buckets, statuses, rejected)


def quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float | None:
    """Prometheus' histogram_quantile over the requests between two scrapes (linear within a bucket)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, cum in zip(bounds, counts, strict=True):
        if cum >= rank:
            if bound == float("inf"):
                return lower  # beyond the last finite bucket: report its bound, as Prometheus does
            return lower + (bound - lower) * (rank - below) / max(cum - below, 1e-12)
        lower, below = bound, cum
    return lower


def backlog(r: redis.Redis, prefix: str) -> tuple[int, int, int]:
    """(messages waiting on `default`, on `gpu`, delivered but not acknowledged) for this run's key prefix."""
    return int(r.llen(f"{prefix}default")), int(r.llen(f"{prefix}gpu")), int(r.hlen(f"{prefix}unacked"))


def db_state(conn: psycopg.Connection) -> tuple[int, int, int, int]:
    """(events stored so far, database bytes, dirty windows, metric rows); max(id) instead of a full count."""
    row = conn.execute(
        "SELECT (SELECT coalesce(max(id), 0) FROM events), pg_database_size(current_database()), "
        "(SELECT count(*) FROM window_states WHERE dirty_since IS NOT NULL), (SELECT count(*) FROM metric_values)"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


@dataclass(frozen=True)
class Proc:
    pid: int
    comm: str
    ppid: int
    pgrp: int
    cpu_ticks: int  # user + system


def processes() -> Iterator[Proc]:
    """Every live process, from /proc/<pid>/stat (fields after the command name, which may hold spaces)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # the process ended meanwhile
        fields = stat.rsplit(")", 1)[1].split()
        yield Proc(int(entry.name), stat[stat.index("(") + 1 : stat.rindex(")")], int(fields[1]), int(fields[2]),
                   int(fields[11]) + int(fields[12]))


def group_rss_mb(pgids: list[int]) -> float:
    """Resident memory of every process in these process groups (a Celery worker and its pool child)."""
    total = 0
    for proc in processes():
        if proc.pgrp in pgids:
            try:
                total += int(Path(f"/proc/{proc.pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            except OSError:
                continue  # the process ended meanwhile
    return total / 2**20


def cpu_seconds(roots: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by live processes: each under the root it descends from,
    Postgres and Redis server processes under their own names, anything else not counted."""
    tick = os.sysconf("SC_CLK_TCK")
    procs = {p.pid: p for p in processes()}
    owner = {pid: name for name, pids in roots.items() for pid in pids}
    out = dict.fromkeys([*roots, "postgres", "redis"], 0.0)
    for pid, proc in procs.items():
        if proc.comm == "postgres" or proc.comm.startswith("redis-server"):
            out["postgres" if proc.comm == "postgres" else "redis"] += proc.cpu_ticks / tick
            continue
        up = pid
        while up in procs and up not in owner and up > 1:
            up = procs[up].ppid
        if up in owner:
            out[owner[up]] += proc.cpu_ticks / tick
    return out


def available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("inf")


class Sampler:
    """One line every `--sample` seconds: ingest rate and latency over the interval, database size, backlog."""

    HEADER = (f"{'t s':>6} {'events/s':>9} {'stored':>11} {'p50 ms':>7} {'p99 ms':>7} {'DB MB':>8} {'q default':>9} "
              f"{'q gpu':>6} {'unacked':>7} {'dirty win':>9} {'metric rows':>11} {'workers MB':>10} {'load1':>5}")

    def __init__(self, collector_url: str, conn: psycopg.Connection, rd: redis.Redis, prefix: str,
                 worker_pids: list[int]) -> None:
        self.url, self.conn, self.rd, self.prefix, self.pids = collector_url, conn, rd, prefix, worker_pids
        self.first = self.prev = scrape(collector_url)
        self.base = db_state(conn)
        self.prev_events, self.t0 = self.base[0], time.monotonic()
        self.prev_t = self.t0
        self.rows: list[tuple[float, ...]] = []  # t, events/s, stored, p50, p99, bytes, q default, q gpu, unacked,
        #                                          dirty windows, metric rows, load1, workers MB
        print(self.HEADER, flush=True)

    def take(self) -> tuple[float, ...]:
        now = scrape(self.url)
        events, size, dirty, metric_rows = db_state(self.conn)
        qd, qg, unacked = backlog(self.rd, self.prefix)
        t = time.monotonic()
        rate = (events - self.prev_events) / (t - self.prev_t)
        p50, p99 = quantile(0.5, self.prev.buckets, now.buckets), quantile(0.99, self.prev.buckets, now.buckets)
        rss = group_rss_mb(self.pids)
        row = (t - self.t0, rate, events - self.base[0], p50 if p50 is not None else float("nan"),
               p99 if p99 is not None else float("nan"), size, qd, qg, unacked, dirty, metric_rows,
               os.getloadavg()[0], rss)
        self.rows.append(row)
        print(f"{row[0]:6.0f} {rate:9,.0f} {row[2]:11,} {_ms(p50):>7} {_ms(p99):>7} {size / 2**20:8,.0f} {qd:9} "
              f"{qg:6} {unacked:7} {dirty:9} {metric_rows:11,} {rss:10,.0f} {row[11]:5.1f}", flush=True)
        self.prev, self.prev_events, self.prev_t = now, events, t
        return row


def start_beat(env: dict[str, str], workdir: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "celery", "-A", "monitor.worker.app", "beat", "-s", str(workdir / "beat-schedule"),
           "--loglevel", "WARNING"]
    return subprocess.Popen(cmd, env={**os.environ, **env}, stdout=(workdir / "beat.log").open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=20_000.0, help="events/s offered in total (the ingest target)")
    ap.add_argument("--producers", type=int, default=3)
    ap.add_argument("--collector-workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=2000)
    ap.add_argument("--gpu-workers", type=int, default=1,
                    help="Celery workers on the `gpu` queue (embeddings, drift, safety); one more serves `default`")
    ap.add_argument("--tick", type=float, default=15.0, help="beat's scan interval, seconds")
    ap.add_argument("--window", type=int, default=300, help="the project's window length, seconds")
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--drain-minutes", type=float, default=3.0,
                    help="after ingest, how long to wait for the workers to catch up")
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    ap.add_argument("--min-free-mb", type=float, default=2048,
                    help="stop early (and say so) if the machine's available memory falls below this")
    args = ap.parse_args()

    print(f"machine: {machine()}", flush=True)
    with servers() as (admin, redis_url), tempfile.TemporaryDirectory(prefix="driftloop-load-") as tmp:
        name = f"driftloop_bench_load_{services.checkout_tag()}"
        db_url = services.recreate_database(admin, name)
        migrations.upgrade(db_url)
        plain = db_url.replace("postgresql+psycopg", "postgresql")
        key = new_key(db_url, "load")
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute("UPDATE projects SET config = %s::jsonb WHERE slug = 'load'",
                         (f'{{"window_seconds": {args.window}}}',))
        work = Path(tmp)
        # The producers flush every 50 ms (as in bench/ingest.py), up to 60 requests/s from one key: over the
        # default per-key request limit (50/s), and a 429 would measure the limiter, not the collector. The item
        # limit (50,000 events/s) stays.
        collector = CollectorProcess(db_url, work / "collector.log", workers=args.collector_workers,
                                     extra_env={"DRIFTLOOP_RATE_LIMIT_PER_SECOND": "1000",
                                                "DRIFTLOOP_RATE_LIMIT_BURST": "1000"})
        # The production redelivery timeout: the fault scripts' 5 s would hand every stage that runs longer
        # than that to a second worker, and the duplicates would pass for backlog.
        extra = {"DRIFTLOOP_TICK_SECONDS": str(args.tick),
                 "DRIFTLOOP_CELERY_VISIBILITY_TIMEOUT": str(Settings.model_fields["celery_visibility_timeout"].default)}
        workers: list[subprocess.Popen[bytes]] = []
        beat = None
        try:
            with celery_environment(db_url, redis_url, work / "data", extra) as env:
                collector.start()
                # As in production: the heavy stages have their own workers, so ticks and ops never wait behind them.
                workers = [start_worker(env, work / "worker-default.log", queues="default")]
                workers += [start_worker(env, work / f"worker-gpu-{i}.log", queues="gpu")
                            for i in range(args.gpu_workers)]
                beat = start_beat(env, work)
                prefix = env["DRIFTLOOP_CELERY_KEY_PREFIX"]
                print(f"collector {collector.url} ({args.collector_workers} workers), Celery workers: 1 default + "
                      f"{args.gpu_workers} gpu, beat every {args.tick:g} s, {args.window // 60}-minute windows; "
                      f"offering {args.rate:,.0f} events/s from {args.producers} producers for {args.minutes:g} min",
                      flush=True)
                per = int(args.rate * args.minutes * 60 / args.producers)
                ctx = mp.get_context("spawn")
                out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
                start_at = time.time() + 5.0
                procs = [ctx.Process(target=producer, args=(collector.url, key.key, per, i, args.batch_size, start_at,
                                                            out, args.rate / args.producers))
                         for i in range(args.producers)]
                for p in procs:
                    p.start()
                while time.time() < start_at:
                    time.sleep(0.05)
                results: list[tuple] = []  # type: ignore[type-arg]
                assert collector.proc is not None
                roots = {"producers": [p.pid for p in procs if p.pid], "collector": [collector.proc.pid],
                         "worker default": [workers[0].pid], "worker gpu": [w.pid for w in workers[1:]],
                         "beat": [beat.pid], "this script": [os.getpid()]}
                cpu_start = cpu_peak = cpu_seconds(roots)
                with psycopg.connect(plain, autocommit=True) as conn:
                    sampler = Sampler(collector.url, conn, redis.Redis.from_url(redis_url), prefix,
                                      [w.pid for w in workers])
                    while len(results) < len(procs):
                        try:
                            results.append(out.get(timeout=args.sample))
                            continue
                        except queue.Empty:  # a sampling period went by
                            pass
                        row = sampler.take()
                        # Highest reading per group: a producer's counters vanish with it when it exits.
                        cpu_peak = {k: max(v, cpu_peak.get(k, 0.0)) for k, v in cpu_seconds(roots).items()}
                        if available_mb() < args.min_free_mb:  # the machine is shared: never push it into OOM
                            for p in procs:
                                p.kill()
                            raise SystemExit(f"STOPPED: available memory fell below {args.min_free_mb:,.0f} MB "
                                             f"(Celery workers at {row[12]:,.0f} MB)")
                    for p in procs:
                        p.join()
                    ingest_seconds = time.monotonic() - sampler.t0
                    cpu_used = {k: max(v, cpu_peak.get(k, 0.0)) - cpu_start.get(k, 0.0)
                                for k, v in cpu_seconds(roots).items()}
                    last = scrape(collector.url)
                    ingest_rows = list(sampler.rows)
                    print(f"-- ingest done after {ingest_seconds:.0f} s; the workers keep going (up to "
                          f"{args.drain_minutes:g} min) until nothing is dirty or queued", flush=True)
                    drain_deadline = time.monotonic() + args.drain_minutes * 60
                    caught_up: float | None = None
                    while time.monotonic() < drain_deadline:
                        time.sleep(args.sample)  # the sampling period
                        row = sampler.take()
                        if row[6] == row[7] == row[8] == row[9] == 0:
                            caught_up = time.monotonic() - sampler.t0 - ingest_seconds
                            break
                    final = db_state(conn)
                    qd, qg, unacked = backlog(sampler.rd, prefix)
                    stored = conn.execute("SELECT count(*), count(DISTINCT client_event_id) FROM events").fetchone()
                    assert stored is not None
                    size_growth = final[1] - sampler.base[1]
                    first, rows = sampler.first, ingest_rows
        finally:
            if beat is not None and beat.poll() is None:
                os.killpg(beat.pid, signal.SIGKILL)
                beat.wait(timeout=30)
            for w in workers:
                kill_worker(w)
            collector.stop()
            if not args.keep:
                services.drop_database(admin, name)

    offered = per * args.producers
    timings = np.concatenate([r[0] for r in results]) / 1000.0
    rejected_http = {s: int(n - first.statuses.get(s, 0)) for s, n in last.statuses.items()
                     if s.startswith("4") and n > first.statuses.get(s, 0)}
    rejected_items = int(last.rejected_items - first.rejected_items)
    rates = [r[1] for r in rows]
    p99s = [r[4] for r in rows if not math.isnan(r[4])]
    print("\nsummary")
    print(f"  offered {offered:,} events at {args.rate:,.0f}/s; stored {stored[0]:,} ({stored[1]:,} distinct) in "
          f"{ingest_seconds:.0f} s = {stored[0] / ingest_seconds:,.0f} events/s overall; per-sample events/s "
          f"median {np.median(rates):,.0f}, min {min(rates):,.0f}" if rates else "  no samples")
    print(f"  collector POST /v1/events latency per {args.sample:g} s sample: p99 median "
          f"{_ms(float(np.median(p99s)) if p99s else None)} ms, worst {_ms(max(p99s, default=None))} ms; whole run p99 "
          f"{_ms(quantile(0.99, first.buckets, last.buckets))} ms")
    during = (rows[-1][5] - sampler.base[1]) if rows else 0
    print(f"  Postgres database grew {during / 2**20:,.0f} MB while ingesting, {size_growth / 2**20:,.0f} MB by the "
          f"end ({size_growth / max(stored[0], 1):,.0f} bytes per event, vectors and metric rows included)")
    cores = (os.cpu_count() or 1) * ingest_seconds
    print("  CPU while ingesting (share of all cores; producers up to their last sample): " + ", ".join(
        f"{k} {v / cores:.0%}" for k, v in sorted(cpu_used.items(), key=lambda kv: -kv[1])))
    print(f"  worker backlog when ingest ended: dirty windows {rows[-1][9] if rows else '?'}; "
          + (f"caught up {caught_up:.0f} s later" if caught_up is not None else
             f"not caught up {args.drain_minutes:g} min later: queue default {qd}, gpu {qg}, unacknowledged "
             f"{unacked}, dirty windows {final[2]}")
          + f"; metric rows {final[3]:,}; Celery workers' peak memory {max(r[12] for r in sampler.rows):,.0f} MB")
    print(f"  rejected: {rejected_items} events refused by the collector, 4xx answers {rejected_http or 'none'}; SDK "
          f"dropped {sum(r[3] for r in results)} (queue full); all flushed: {all(r[1] for r in results)}; "
          f"longest drain after the last log(): {max(r[4] for r in results):.1f} s")
    print(f"  log() µs: p50 {np.percentile(timings, 50):.2f}, p99 {np.percentile(timings, 99):.2f}, "
          f"max {timings.max():,.0f}; {machine()}")
    problems = []
    if stored[0] != offered or stored[1] != offered:
        problems.append(f"stored {stored[0]:,} rows ({stored[1]:,} distinct) of {offered:,} offered")
    if rejected_items or rejected_http:
        problems.append("the collector rejected valid events")
    if problems:
        raise SystemExit("FAILED: " + "; ".join(problems))


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


if __name__ == "__main__":
    main()
