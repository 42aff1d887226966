"""Fault: the collector is down for 60 s while an app logs 10,000 events through the SDK.

    python -m bench.faults.collector_down [--quick] [--events 10000] [--outage 60]

A real collector process on a fresh Postgres database; an app thread logs events (and feedback for every
tenth) at a steady pace through the real SDK with its default settings (disk spool on). The collector is
SIGKILLed (a crash: a request in flight gets no answer), stays down for `--outage` seconds of real time, and is
started again on the same port. Promises checked: every event and feedback item is stored exactly once after
it returns, nothing is dropped, and no `log()` call blocked the app thread longer than the SDK's documented
bound (`monitor.sdk.LOG_BLOCK_BOUND_SECONDS`). Prints the outage, the spool and replay counters, the longest
`log()` call (with a do-nothing call timed alongside as the machine's own noise) and the time to recover.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from bench.faults.common import Report, Timeout, fresh_database, machine, new_key, percentile_ms, servers
from monitor.sdk import LOG_BLOCK_BOUND_SECONDS, Client
from tests.support.collector import CollectorProcess
from tests.support.waiting import wait_for


def _control(*args: object, **kwargs: object) -> str:
    """A do-nothing call with log()'s arguments: what the machine itself costs per call (scheduling, GIL)."""
    return ""


class App(threading.Thread):
    """The host application: logs `n` events evenly over `seconds`, timing every log() call."""

    def __init__(self, client: Client, n: int, seconds: float) -> None:
        super().__init__(name="app", daemon=True)
        self.client, self.n, self.seconds = client, n, seconds
        self.ids: list[str] = []
        self.feedback_ids: list[str] = []
        self.calls: list[tuple[float, int]] = []  # (monotonic time of the call, duration ns)
        self.control_ns: list[int] = []

    def run(self) -> None:
        clock = time.perf_counter_ns
        start = time.monotonic()
        for i in range(self.n):
            due = start + i * self.seconds / self.n
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # the app's own pace (it waits on its model between calls)
            prompt, answer = f"How do I reset my password? (case {i})", f"Open settings, then security ({i})."
            t0 = clock()
            event_id = self.client.log(prompt, answer, model="support-bot", model_version="v3", latency_ms=120.0,
                                       prompt_tokens=12, completion_tokens=9, metadata={"tenant": "acme"})
            t1 = clock()
            _control(prompt, answer, model="support-bot", model_version="v3", latency_ms=120.0, prompt_tokens=12,
                     completion_tokens=9, metadata={"tenant": "acme"})
            t2 = clock()
            self.calls.append((time.monotonic(), t1 - t0))
            self.control_ns.append(t2 - t1)
            self.ids.append(event_id)
            if i % 10 == 0:
                self.feedback_ids.append(self.client.feedback(event_id, score=1.0, label="thumbs_up"))


def _stored(database_url: str, table: str, id_column: str) -> set[str]:
    import psycopg

    with psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql")) as conn:
        return {r[0] for r in conn.execute(f"SELECT {id_column} FROM {table}")}


def _count(database_url: str, table: str) -> tuple[int, int]:
    import psycopg

    id_column = "client_event_id" if table == "events" else "client_feedback_id"
    with psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql")) as conn:
        row = conn.execute(f"SELECT count(*), count(DISTINCT {id_column}) FROM {table}").fetchone()
        assert row is not None
        return int(row[0]), int(row[1])


def run(report: Report, events: int, outage: float, lead: float) -> None:
    report.did(f"machine: {machine()}")
    with servers() as (admin, _redis), fresh_database(admin, "collector") as db_url, \
            tempfile.TemporaryDirectory(prefix="driftloop-fault-") as tmp:
        key = new_key(db_url, "fault-collector-down")
        collector = CollectorProcess(db_url, Path(tmp) / "collector.log")
        collector.start()
        client = Client(collector.url, key.key, spool_dir=Path(tmp) / "spool")  # the SDK's defaults otherwise
        cfg = client._config
        report.did(f"collector pid {collector.proc.pid if collector.proc else '?'} on {collector.url}; SDK defaults: "
                   f"batch {cfg.batch_size}, flush every {cfg.flush_interval:g} s, max_queue {client._max_queue:,}, "
                   f"retry {cfg.retry}")
        total = lead + outage + lead
        app = App(client, events, total)
        try:
            app.start()
            time.sleep(lead)  # the schedule of the fault itself, not a wait for a result
            down_at = time.monotonic()
            collector.kill()
            stored_at_kill = _count(db_url, "events")[0]
            report.did(f"SIGKILLed the collector after {len(app.ids):,} events ({stored_at_kill:,} stored by then)")
            time.sleep(outage)
            logged_during = len(app.ids)
            stored_before_restart = _count(db_url, "events")[0]
            collector.start()
            up_at = time.monotonic()
            report.did(f"restarted the collector on the same port after {up_at - down_at:.1f} s down "
                       f"(the app logged {logged_during:,} events by then; stored meanwhile: "
                       f"{stored_before_restart - stored_at_kill})")
            app.join(timeout=total + 60)
            report.check(not app.is_alive(), "the app thread finished on schedule",
                         f"{len(app.ids):,} events logged in {time.monotonic() - down_at + lead:.1f} s")
            flushed = client.flush(timeout=60)
            wait_for(lambda: _count(db_url, "events")[0] >= events and
                     _count(db_url, "feedback")[0] >= len(app.feedback_ids),
                     120, "every event and feedback item to be stored")
            recovered = time.monotonic() - up_at
        finally:
            client.close(timeout=10)
            collector.stop()

        stats = client.stats
        during = [d for t, d in app.calls if down_at <= t <= up_at]
        all_ns = [d for _, d in app.calls]
        report.found(f"SDK: requests {stats.requests}, retries {stats.retries}, spooled {stats.spooled:,}, "
                     f"replayed {stats.replayed:,}, sent {stats.sent:,} (duplicates {stats.duplicates}), "
                     f"flush() {'returned True' if flushed else 'returned False'}")
        report.found(f"recovered {recovered:.1f} s after the collector came back (last item stored)")
        report.found(f"log() during the outage: {len(during):,} calls, p50 {percentile_ms(during, 50) * 1000:.1f} µs, "
                     f"p99 {percentile_ms(during, 99) * 1000:.1f} µs, max {max(during, default=0) / 1e6:.2f} ms; "
                     f"whole run max {max(all_ns) / 1e6:.2f} ms; do-nothing control max "
                     f"{max(app.control_ns) / 1e6:.2f} ms")

        ev_total, ev_distinct = _count(db_url, "events")
        fb_total, fb_distinct = _count(db_url, "feedback")
        missing = set(app.ids) - _stored(db_url, "events", "client_event_id")
        fb_missing = set(app.feedback_ids) - _stored(db_url, "feedback", "client_feedback_id")
        report.check(stats.spooled > 0 and stats.replayed > 0 and stored_before_restart == stored_at_kill,
                     "the outage was real (nothing stored while down; batches spooled, then replayed)",
                     f"stored while down {stored_before_restart - stored_at_kill}, spooled {stats.spooled:,}, "
                     f"replayed {stats.replayed:,}")
        report.check(ev_total == ev_distinct == events and not missing,
                     "every event stored exactly once",
                     f"logged {events:,}, rows {ev_total:,}, distinct {ev_distinct:,}, missing {len(missing)}")
        report.check(fb_total == fb_distinct == len(app.feedback_ids) and not fb_missing,
                     "every feedback item stored exactly once",
                     f"sent {len(app.feedback_ids):,}, rows {fb_total:,}, distinct {fb_distinct:,}, "
                     f"missing {len(fb_missing)}")
        drops = {k: v for k, v in stats.as_dict().items() if k.startswith("dropped_") and v}
        report.check(not drops, "the SDK dropped nothing", f"drop counters {drops or 'all zero'}")
        worst = max(all_ns) / 1e9
        report.check(worst <= LOG_BLOCK_BOUND_SECONDS, "log() never blocked the app longer than the bound",
                     f"longest of {len(all_ns):,} calls {worst * 1000:.2f} ms (during the outage "
                     f"{max(during, default=0) / 1e6:.2f} ms), bound {LOG_BLOCK_BOUND_SECONDS * 1000:g} ms")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1,000 events and an 8 s outage (CI)")
    ap.add_argument("--events", type=int, default=None, help="events the app logs (default 10,000)")
    ap.add_argument("--outage", type=float, default=None, help="seconds the collector stays down (default 60)")
    args = ap.parse_args(argv)
    events = args.events or (1_000 if args.quick else 10_000)
    outage = args.outage or (8.0 if args.quick else 60.0)
    report = Report("collector_down")
    try:
        run(report, events, outage, lead=2.0 if args.quick else 10.0)
    except Timeout as exc:
        report.fail(str(exc))
    return report.finish()


if __name__ == "__main__":
    raise SystemExit(main())
