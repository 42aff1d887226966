"""Fault: Postgres goes down mid-ingest and comes back; the collector stays up.

    python -m bench.faults.postgres_restart [--quick] [--events 6000] [--down 20] [--mode immediate|fast]

A throwaway Postgres cluster started from the local binaries (never the machine's shared server), a real
collector process on it, and an app thread logging events through the real SDK (default settings, spool on).
Mid-ingest the cluster is stopped (`--mode immediate`, the default, is a crash with WAL recovery on restart;
`fast` a clean shutdown), kept down `--down` seconds while the script probes the collector, then started again.
Promises checked: while the database is down the collector answers 503 with `Retry-After` (never a 500), the
SDK waits what it was told and retries, and afterwards every event is stored exactly once.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.faults.collector_down import App, _count, _stored
from bench.faults.common import Report, Timeout, machine, new_key
from monitor import migrations
from monitor.sdk import Client
from tests.support import services
from tests.support.collector import CollectorProcess
from tests.support.waiting import wait_for


def _answers_by_status(collector_url: str) -> dict[str, float]:
    """POST /v1/events answers so far, by status code, from the collector's own Prometheus counters."""
    text = httpx.get(f"{collector_url}/metrics", timeout=5).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "driftloop_http_requests":
            continue
        for sample in family.samples:
            labels = sample.labels
            if sample.name.endswith("_total") and (labels.get("route"), labels.get("method")) == ("/v1/events", "POST"):
                out[labels["status"]] = out.get(labels["status"], 0) + sample.value
    return out


def _probe(collector_url: str, key: str) -> tuple[int, str | None, float]:
    """One batch as an app would send it; (status, Retry-After header, seconds to answer)."""
    body = {"events": [{"event_id": f"probe-{time.time_ns()}", "prompt": "probe", "response": "probe"}]}
    start = time.monotonic()
    r = httpx.post(f"{collector_url}/v1/events", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    return r.status_code, r.headers.get("retry-after"), time.monotonic() - start


def run(report: Report, events: int, down: float, mode: str, retry_after: int, lead: float) -> None:
    report.did(f"machine: {machine()}")
    throwaways = services.Throwaways()
    collector: CollectorProcess | None = None
    try:
        cluster = services.start_throwaway_postgres(throwaways)
        if cluster is None:
            report.fail("no initdb/pg_ctl on this machine: cannot start a throwaway Postgres cluster")
            return
        db_url = services.recreate_database(cluster.url, "driftloop_fault_pg_restart")
        migrations.upgrade(db_url)
        report.did(f"throwaway Postgres cluster on port {cluster.port} ({cluster.data})")
        key = new_key(db_url, "fault-postgres-restart")
        with tempfile.TemporaryDirectory(prefix="driftloop-fault-") as tmp:
            collector = CollectorProcess(f"{db_url}?connect_timeout=3", Path(tmp) / "collector.log",
                                         extra_env={"DRIFTLOOP_RETRY_AFTER_SECONDS": str(retry_after)})
            collector.start()
            client = Client(collector.url, key.key, spool_dir=Path(tmp) / "spool")
            report.did(f"collector on {collector.url} with DRIFTLOOP_RETRY_AFTER_SECONDS={retry_after}; "
                       f"SDK defaults ({client._config.retry})")
            app = App(client, events, lead + down + lead)
            probes: list[tuple[int, str | None, float]] = []
            try:
                app.start()
                time.sleep(lead)  # the fault's schedule: ingest is under way
                stored_at_stop = _count(db_url, "events")[0]
                down_at = time.monotonic()
                cluster.stop(mode)
                report.did(f"stopped Postgres (-m {mode}) after {len(app.ids):,} events logged, "
                           f"{stored_at_stop:,} stored")
                while time.monotonic() - down_at < down:
                    probes.append(_probe(collector.url, key.key))
                    time.sleep(0.5)  # probe pace while the database is down
                answers_while_down = _answers_by_status(collector.url)
                cluster.start()
                up_at = time.monotonic()
                report.did(f"started Postgres again after {up_at - down_at:.1f} s down; "
                           f"{len(probes)} probe requests sent meanwhile")
                app.join(timeout=lead + down + lead + 60)
                flushed = client.flush(timeout=60)
                wait_for(lambda: _count(db_url, "events")[0] >= events, 180, "every event to be stored")
                recovered = time.monotonic() - up_at
                answers = _answers_by_status(collector.url)
            finally:
                client.close(timeout=10)

            stats = client.stats
            waits = [d for reason, d in client.retry_schedule if reason == "retry_after"]
            statuses = sorted({p[0] for p in probes})
            headers = sorted({p[1] for p in probes if p[1] is not None})
            report.found(f"probes while down: statuses {statuses}, Retry-After values {headers}, slowest answer "
                         f"{max((p[2] for p in probes), default=0):.2f} s")
            report.found(f"collector answers to POST /v1/events by status (whole run): "
                         f"{ {k: int(v) for k, v in sorted(answers.items())} }; of which until Postgres was back: "
                         f"{ {k: int(v) for k, v in sorted(answers_while_down.items())} }")
            report.found(f"SDK: requests {stats.requests}, retries {stats.retries} ({len(waits)} after a 503, waits "
                         f"{sorted(set(waits))} s), spooled {stats.spooled:,}, replayed {stats.replayed:,}, duplicates "
                         f"{stats.duplicates}, flush() {flushed}")
            report.found(f"recovered {recovered:.1f} s after Postgres came back (last event stored)")

            ev_total, ev_distinct = _count(db_url, "events")
            stored_ids = _stored(db_url, "events", "client_event_id")
            missing = set(app.ids) - stored_ids
            probes_stored = {i for i in stored_ids if i.startswith("probe-")}
            report.check(bool(probes) and all(p[0] == 503 and p[1] == str(retry_after) for p in probes),
                         "while the database is down the collector answers 503 with Retry-After",
                         f"{len(probes)} probes: statuses {statuses}, Retry-After {headers}")
            report.check(not any(s.startswith("5") and s != "503" for s in answers),
                         "never a 500 (or other 5xx) instead of 503", f"statuses seen {sorted(answers)}")
            report.check(bool(waits) and all(w == retry_after for w in waits),
                         "the SDK waited the Retry-After it was given, then retried",
                         f"{len(waits)} waits after a 503: {sorted(set(waits))} s")
            report.check(not probes_stored, "a 503 stored nothing", f"probe events stored: {len(probes_stored)}")
            report.check(ev_total == ev_distinct == events and not missing,
                         "nothing lost or duplicated",
                         f"logged {events:,}, rows {ev_total - len(probes_stored):,}, distinct "
                         f"{ev_distinct - len(probes_stored):,}, missing {len(missing)}")
            drops = {k: v for k, v in stats.as_dict().items() if k.startswith("dropped_") and v}
            report.check(not drops, "the SDK dropped nothing", f"drop counters {drops or 'all zero'}")
    finally:
        if collector is not None:
            collector.stop()
        throwaways.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1,000 events, 6 s down, Retry-After 2 (CI)")
    ap.add_argument("--events", type=int, default=None, help="events the app logs (default 6,000)")
    ap.add_argument("--down", type=float, default=None, help="seconds Postgres stays down (default 20)")
    ap.add_argument("--mode", choices=["immediate", "fast"], default="immediate", help="how Postgres is stopped")
    args = ap.parse_args(argv)
    report = Report("postgres_restart")
    try:
        run(report, args.events or (1_000 if args.quick else 6_000), args.down or (6.0 if args.quick else 20.0),
            args.mode, retry_after=2 if args.quick else 5, lead=2.0 if args.quick else 5.0)
    except Timeout as exc:
        report.fail(str(exc))
    return report.finish()


if __name__ == "__main__":
    raise SystemExit(main())
