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
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import time
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
from tests.support import services  # noqa: E402
from tests.support.collector import CollectorProcess  # noqa: E402
from tests.test_celery_worker import _die_with_parent, kill_worker, start_worker  # noqa: E402

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
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
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
        collector = CollectorProcess(db_url, work / "collector.log", workers=args.collector_workers)
        extra = {"DRIFTLOOP_TICK_SECONDS": str(args.tick)}
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
                rd = redis.Redis.from_url(redis_url)
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
                results, rows = [], []
                first = prev = scrape(collector.url)
                with psycopg.connect(plain, autocommit=True) as conn:
                    base = db_state(conn)
                    prev_events, prev_t = base[0], time.monotonic()
                    t0 = prev_t
                    print(f"{'t s':>6} {'events/s':>9} {'stored':>11} {'p50 ms':>7} {'p99 ms':>7} {'DB MB':>8} "
                          f"{'q default':>9} {'q gpu':>6} {'unacked':>7} {'dirty win':>9} {'metric rows':>11} "
                          f"{'load1':>5}", flush=True)
                    while len(results) < len(procs):
                        try:
                            results.append(out.get(timeout=args.sample))
                            continue
                        except Exception:  # queue.Empty: a sampling period went by
                            pass
                        now = scrape(collector.url)
                        events, size, dirty, metric_rows = db_state(conn)
                        qd, qg, unacked = backlog(rd, prefix)
                        t = time.monotonic()
                        rate = (events - prev_events) / (t - prev_t)
                        p50, p99 = quantile(0.5, prev.buckets, now.buckets), quantile(0.99, prev.buckets, now.buckets)
                        row = (t - t0, rate, events - base[0], p50, p99, size, qd, qg, unacked, dirty, metric_rows,
                               os.getloadavg()[0])
                        rows.append(row)
                        print(f"{row[0]:6.0f} {rate:9,.0f} {row[2]:11,} {_ms(p50):>7} {_ms(p99):>7} "
                              f"{size / 2**20:8,.0f} {qd:9} {qg:6} {unacked:7} {dirty:9} {metric_rows:11,} "
                              f"{row[11]:5.1f}", flush=True)
                        prev, prev_events, prev_t = now, events, t
                    for p in procs:
                        p.join()
                    ingest_seconds = time.monotonic() - t0
                    last = scrape(collector.url)
                    final = db_state(conn)
                    qd, qg, unacked = backlog(rd, prefix)
                    stored = conn.execute("SELECT count(*), count(DISTINCT client_event_id) FROM events").fetchone()
                    assert stored is not None
                    size_growth = final[1] - base[1]
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
    p99s = [r[4] for r in rows if r[4] is not None]
    print("\nsummary")
    print(f"  offered {offered:,} events at {args.rate:,.0f}/s; stored {stored[0]:,} ({stored[1]:,} distinct) in "
          f"{ingest_seconds:.0f} s = {stored[0] / ingest_seconds:,.0f} events/s overall; per-sample events/s "
          f"median {np.median(rates):,.0f}, min {min(rates):,.0f}" if rates else "  no samples")
    print(f"  collector POST /v1/events latency per {args.sample:g} s sample: p99 median "
          f"{_ms(float(np.median(p99s)) if p99s else None)} ms, worst {_ms(max(p99s, default=None))} ms; whole run p99 "
          f"{_ms(quantile(0.99, first.buckets, last.buckets))} ms")
    print(f"  Postgres database grew {size_growth / 2**20:,.0f} MB ({size_growth / max(stored[0], 1):,.0f} bytes "
          f"per event, vectors and metric rows included)")
    print(f"  worker backlog at the end: queue default {qd}, gpu {qg}, unacknowledged {unacked}, dirty windows "
          f"{final[2]}, metric rows {final[3]:,}")
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
