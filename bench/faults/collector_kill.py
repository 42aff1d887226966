"""Fault: one of several collectors behind nginx is SIGKILLed while apps log events through the SDK.

    python -m bench.faults.collector_kill [--quick] [--collectors 3] [--events 20000] [--seconds 20]

SDK -> nginx (Debian's, the shipped deploy/nginx template) -> N `driftloop serve` processes -> one fresh Postgres
database; rate limits shared through Redis, as in production. Four app threads, each with its own SDK client
(default settings, disk spool on, batches of 100 so requests are always in flight), log events at a steady
pace. A third of the way in, one collector is SIGKILLed (a crash: whatever it was answering gets no answer) and
stays dead. nginx retries what failed on the live collectors (ingestion is idempotent by event id, so its template
allows retrying POSTs there), marks the dead one down, and the SDK retries whatever still failed.

Promises checked: every event stored exactly once (rows = distinct event ids = events logged, none missing),
the SDK dropped nothing, and nginx moved every batch the dead collector failed to a live one (none got an error).
Prints where the kill landed (the victim's uncommitted write transaction, seen in pg_stat_activity), the requests
nginx retried off the dead collector and how each attempt there failed (in flight vs refused), the batches the
collectors answered as duplicates (retried after a lost answer, stored once), and events/s through the farm.
Needs nginx (`make install` installs it as root on Debian).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from bench.faults.common import Report, Timeout, fresh_database, machine, new_key, servers
from monitor.sdk import Client
from tests.support.collector import CollectorProcess, start_all
from tests.support.nginx import INSTALL_HINT, Nginx, nginx_binary
from tests.support.pg_activity import with_application_name
from tests.support.waiting import wait_for

APPS = 4


class App(threading.Thread):
    """One host application: logs `n` events evenly over `seconds` through its own SDK client."""

    def __init__(self, name: str, client: Client, n: int, seconds: float) -> None:
        super().__init__(name=name, daemon=True)
        self.client, self.n, self.seconds = client, n, seconds
        self.ids: list[str] = []

    def run(self) -> None:
        start = time.monotonic()
        for i in range(self.n):
            pause = start + i * self.seconds / self.n - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # the app's own pace (it waits on its model between calls)
            self.ids.append(self.client.log(f"Where is my order? ({self.name} {i})", f"It ships today ({i}).",
                                            model="support-bot", model_version="v3", latency_ms=95.0,
                                            metadata={"tenant": self.name}))


def _counts(database_url: str) -> tuple[int, int]:
    import psycopg

    with psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql")) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT client_event_id) FROM events").fetchone()
        assert row is not None
        return int(row[0]), int(row[1])


def _stored_ids(database_url: str) -> set[str]:
    import psycopg

    with psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql")) as conn:
        return {r[0] for r in conn.execute("SELECT client_event_id FROM events")}


def _inside_a_batch(database_url: str, name: str, deadline: float) -> str | None:
    """Poll until connection `name` is inside an ingest transaction that has written and not committed (the
    moment a crash hurts most); its query and age, or None if that was not seen before `deadline`."""
    import psycopg

    plain = database_url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(plain, autocommit=True) as conn:  # each statement its own snapshot of pg_stat_activity
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT left(query, 40), now() - xact_start FROM pg_stat_activity WHERE application_name = %s "
                "AND backend_xid IS NOT NULL AND query ILIKE '%%events%%'", (name,)).fetchone()
            if row is not None:
                return f"query {row[0]!r}, open for {row[1].total_seconds() * 1000:.1f} ms"
            time.sleep(0.001)  # polling interval; the deadline bounds the wait
    return None


def _first_failures(error_log: str, victim: str) -> Counter[str]:
    """How nginx's attempts on the dead collector failed, from its error log."""
    kinds: Counter[str] = Counter()
    for line in error_log.splitlines():
        if victim not in line:
            continue
        if "Connection refused" in line:
            kinds["refused (already dead)"] += 1
        elif "prematurely closed" in line or "reset by peer" in line:
            kinds["in flight (killed mid-request)"] += 1
        elif "upstream server temporarily disabled" in line:
            kinds["marked down"] += 1
        else:
            kinds["other"] += 1
    return kinds


def run(report: Report, n_collectors: int, events: int, seconds: float) -> None:
    report.did(f"machine: {machine()}")
    if nginx_binary() is None:
        report.fail(INSTALL_HINT)
        return
    with servers() as (admin, redis_url), fresh_database(admin, "collector_kill") as db_url, \
            tempfile.TemporaryDirectory(prefix="driftloop-fault-") as tmp:
        key = new_key(db_url, "fault-collector-kill")
        env = {"DRIFTLOOP_REDIS_URL": redis_url, "DRIFTLOOP_RATE_LIMIT_BACKEND": "redis",
               "DRIFTLOOP_CELERY_KEY_PREFIX": f"driftloop-fault-kill-{uuid.uuid4().hex[:8]}:"}
        # Connections carry the collector's name, so pg_stat_activity shows when the victim is inside a batch.
        collectors = [CollectorProcess(with_application_name(db_url, f"collector-{i}"),
                                       Path(tmp) / f"collector-{i}.log", extra_env=env) for i in range(n_collectors)]
        nginx = Nginx([f"127.0.0.1:{c.port}" for c in collectors])
        clients: list[Client] = []
        try:
            start_all(collectors)
            nginx.start()
            victim = collectors[1]
            victim_address = f"127.0.0.1:{victim.port}"
            report.did(f"{n_collectors} collectors ({', '.join(str(c.port) for c in collectors)}) behind nginx on "
                       f"{nginx.url}; rate limits shared through Redis")
            clients = [Client(nginx.url, key.key, batch_size=100, spool_dir=Path(tmp) / f"spool-{i}")
                       for i in range(APPS)]
            apps = [App(f"app{i}", client, events // APPS, seconds) for i, client in enumerate(clients)]
            logged_target = sum(a.n for a in apps)
            started = time.monotonic()
            for a in apps:
                a.start()
            time.sleep(seconds / 3)  # the schedule of the fault itself, not a wait for a result
            lines_before_kill = len(nginx.access_log())
            caught = _inside_a_batch(db_url, "collector-1", deadline=time.monotonic() + seconds / 3)
            victim.kill()
            stored_at_kill = _counts(db_url)[0]
            where = (f"inside a batch's uncommitted write transaction ({caught})" if caught else
                     "between batches (no write transaction of it was seen within the deadline)")
            report.did(f"SIGKILLed collector {victim_address} {where}, after {sum(len(a.ids) for a in apps):,} "
                       f"events logged ({stored_at_kill:,} stored by then); it stays dead")
            for a in apps:
                a.join(timeout=seconds + 120)
            report.check(not any(a.is_alive() for a in apps), "the apps finished on schedule",
                         f"{sum(len(a.ids) for a in apps):,} events logged in {time.monotonic() - started:.1f} s")
            flushed = all(c.flush(timeout=60) for c in clients)
            wait_for(lambda: _counts(db_url)[0] >= logged_target, 120, "every event to be stored")
            elapsed = time.monotonic() - started
        finally:
            for client in clients:
                client.close(timeout=10)
            nginx.stop()
            for c in collectors:
                c.stop()

        logged = [i for a in apps for i in a.ids]
        rows, distinct = _counts(db_url)
        missing = set(logged) - _stored_ids(db_url)
        after = [line for line in nginx.access_log()[lines_before_kill:] if line.request.startswith("POST")]
        # Lines since just before the kill; a batch the victim answered before it died may be among them.
        retried = [line for line in after if victim_address in line.upstreams[:-1]]
        failed = [line for line in after if line.status >= 300]
        sdk = [c.stats for c in clients]
        report.found(f"{rows:,} rows for {len(logged):,} events in {elapsed:.1f} s "
                     f"({rows / elapsed:,.0f} events/s through nginx, {n_collectors} collectors, one dead)")
        report.found(f"after the kill: {len(after):,} batches through nginx, {len(retried)} of them tried on the dead "
                     f"collector first and retried by nginx on a live one; its failures on the dead one: "
                     f"{dict(_first_failures(nginx.error_log(), victim_address)) or 'none logged'}; "
                     f"batches answered with an error: {len(failed)}")
        report.found(f"SDK: requests {sum(s.requests for s in sdk):,}, retries {sum(s.retries for s in sdk)}, "
                     f"spooled {sum(s.spooled for s in sdk):,}, sent {sum(s.sent for s in sdk):,}, already stored "
                     f"(a retried batch, stored once) {sum(s.duplicates for s in sdk):,}; flush() "
                     f"{'returned True' if flushed else 'returned False'}")
        report.check(rows == distinct == len(logged) and not missing, "every event stored exactly once (0 lost, "
                     "0 duplicated)", f"logged {len(logged):,}, rows {rows:,}, distinct event ids {distinct:,}, "
                     f"missing {len(missing)}, duplicated {rows - distinct}")
        drops = {k: v for s in sdk for k, v in s.as_dict().items() if k.startswith("dropped_") and v}
        report.check(not drops, "the SDK dropped nothing", f"drop counters {drops or 'all zero'}")
        report.check(bool(retried) and not failed,
                     "nginx moved every batch the dead collector failed to a live one; no batch got an error",
                     f"{len(retried)} batches tried on the dead collector, then answered by "
                     f"{sorted({line.upstreams[-1] for line in retried})}; {len(failed)} of {len(after):,} answered "
                     "with an error")

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 collectors, 4,000 events over 8 s (CI)")
    ap.add_argument("--collectors", type=int, default=3, help="collector processes behind nginx (at least 2)")
    ap.add_argument("--events", type=int, default=None, help="events the apps log in all (default 20,000)")
    ap.add_argument("--seconds", type=float, default=None, help="how long the apps take to log them (default 20)")
    args = ap.parse_args(argv)
    if args.collectors < 2:
        ap.error("--collectors must be at least 2: one is killed, the others must carry the load")
    events = args.events or (4_000 if args.quick else 20_000)
    seconds = args.seconds or (8.0 if args.quick else 20.0)
    report = Report("collector_kill")
    try:
        run(report, args.collectors, events, seconds)
    except Timeout as exc:
        report.fail(str(exc))
    return report.finish()


if __name__ == "__main__":
    raise SystemExit(main())
