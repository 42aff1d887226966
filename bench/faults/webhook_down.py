"""Fault: a webhook receiver is down for a while; deliveries succeed after it returns, per the retry schedule.

    python -m bench.faults.webhook_down [--quick] [--messages 5] [--down 40]

Real parts: Postgres (a fresh database), Redis with this run's own key prefix, one Celery worker process that
sends the deliveries (`driftloop.webhooks.deliver`, which queues each retry itself with the backoff as its
countdown), and a real HTTP receiver on 127.0.0.1 that verifies every signature with the reference
`standardwebhooks` package. The receiver's port is closed, `--messages` events are emitted, and it stays down
`--down` seconds; when it comes back its first answer is 503 with a `Retry-After`, then 200s.

Promises checked: every delivery succeeds after the receiver returns and each message is accepted exactly once;
no retry came sooner than the schedule allows (equal jitter: at least half the nominal backoff, and at least
the `Retry-After` after a 503), nor much later than the nominal backoff; every request was correctly signed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from itertools import pairwise
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bench.faults.common import Report, Timeout, celery_environment, fresh_database, machine, servers
from monitor.db import make_engine
from monitor.projects.service import get_or_create_project
from monitor.settings import get_settings
from monitor.webhooks.delivery import policy_from
from monitor.webhooks.endpoints import EndpointSpec, create_endpoint
from monitor.webhooks.models import WebhookAttempt, WebhookDelivery
from monitor.webhooks.outbox import emit_event
from tests.support.celery_env import kill_worker, start_worker
from tests.support.waiting import wait_for
from tests.support.webhook_receiver import Answer, Receiver

LATE_SLACK_SECONDS = 5.0  # task queueing and a busy worker may add this much to a scheduled retry


def run(report: Report, messages: int, down: float, retry_after: int, base: float, cap: float) -> None:
    report.did(f"machine: {machine()}")
    with servers() as (admin, redis_url), fresh_database(admin, "webhooks") as db_url, \
            tempfile.TemporaryDirectory(prefix="driftloop-fault-") as tmp:
        extra = {"DRIFTLOOP_WEBHOOK_ALLOW_PRIVATE": "true", "DRIFTLOOP_WEBHOOK_BACKOFF_BASE_SECONDS": str(base),
                 "DRIFTLOOP_WEBHOOK_BACKOFF_CAP_SECONDS": str(cap), "DRIFTLOOP_WEBHOOK_TIMEOUT_SECONDS": "5",
                 # Time is compressed here (seconds, not the production hours): a few more attempts than the
                 # default 10 keep the schedule's worst case (every jitter at its floor) from running out.
                 "DRIFTLOOP_WEBHOOK_MAX_ATTEMPTS": "12"}
        with celery_environment(db_url, redis_url, Path(tmp) / "data", extra) as env:
            settings = get_settings()
            policy = policy_from(settings)
            engine = make_engine(db_url)
            factory = sessionmaker(bind=engine, expire_on_commit=False)
            receiver = Receiver()
            receiver.serve()
            with factory() as s:
                project = get_or_create_project(s, "fault-webhooks")
                secret = create_endpoint(s, project.id, EndpointSpec(name="pager", url=receiver.url),
                                         settings=settings).secret
                s.commit()
            worker = start_worker(env, Path(tmp) / "worker.log")
            try:
                report.did(f"receiver on {receiver.url}; worker pid {worker.pid}; retry policy: "
                           f"{policy.max_attempts} attempts, backoff {base:g} s doubling to {cap:g} s, equal jitter")
                receiver.go_down()
                down_at = time.monotonic()
                with factory() as s:
                    for i in range(messages):
                        emit_event(s, project.id, "alert.firing", {"alert": {"id": i, "rule": "drift", "n": i}},
                                   settings=settings)
                    s.commit()  # deliveries are queued to the worker after this commit
                report.did(f"closed the receiver's port, emitted {messages} alert.firing events")
                time.sleep(down)  # the outage itself
                receiver.answer(Answer(503, headers={"Retry-After": str(retry_after)}))
                receiver.come_back()
                up_at = time.monotonic()
                report.did(f"receiver back after {up_at - down_at:.1f} s, its first answer 503 with Retry-After: "
                           f"{retry_after}, then 200")

                def statuses() -> list[str]:
                    with Session(engine) as s:
                        return list(s.scalars(select(WebhookDelivery.status).where(
                            WebhookDelivery.project_id == project.id)))

                wait_for(lambda: all(x != "pending" for x in statuses()), down + 10 * cap + 120,
                         "every delivery to settle")
                settled = time.monotonic() - up_at
            finally:
                kill_worker(worker)
                receiver.go_down()

            with Session(engine) as s:
                deliveries = list(s.scalars(select(WebhookDelivery).where(WebhookDelivery.project_id == project.id)))
                attempts = list(s.scalars(select(WebhookAttempt).where(
                    WebhookAttempt.delivery_id.in_([d.id for d in deliveries])).order_by(
                    WebhookAttempt.delivery_id, WebhookAttempt.attempt)))
            engine.dispose()

        by_delivery: dict[int, list[WebhookAttempt]] = {d.id: [] for d in deliveries}
        for a in attempts:
            by_delivery[a.delivery_id].append(a)
        early: list[str] = []
        late: list[str] = []
        lateness: list[float] = []
        for delivery_id, tries in by_delivery.items():
            for prev, nxt in pairwise(tries):
                gap = (nxt.started_at - prev.started_at).total_seconds()
                nominal = policy.nominal(prev.attempt)
                floor = max(nominal / 2, float(retry_after) if prev.status_code == 503 else 0.0)
                ceiling = max(nominal, float(retry_after) if prev.status_code == 503 else 0.0)
                lateness.append(gap - ceiling)
                if gap < floor - 0.01:  # timestamps are stored to the microsecond; allow rounding only
                    early.append(f"delivery {delivery_id} attempt {nxt.attempt} after {gap:.2f} s < {floor:.2f} s")
                if gap > ceiling + LATE_SLACK_SECONDS:
                    late.append(f"delivery {delivery_id} attempt {nxt.attempt} after {gap:.2f} s > {ceiling:.2f} s")
        first = next(iter(by_delivery.values()), [])
        report.found("first delivery, wait before each retry (nominal): " + ", ".join(
            f"{(b.started_at - a.started_at).total_seconds():.2f} s ({policy.nominal(a.attempt):g}"
            f"{', Retry-After ' + str(retry_after) if a.status_code == 503 else ''})" for a, b in pairwise(first)))
        after_503 = [(b.started_at - a.started_at).total_seconds() for tries in by_delivery.values()
                     for a, b in pairwise(tries) if a.status_code == 503]
        report.found(f"after the 503 with Retry-After: {retry_after}: next attempt "
                     f"{', '.join(f'{g:.2f} s' for g in after_503) or '(none)'} later")
        refused = sum(1 for a in attempts if a.status_code is None)
        payloads = receiver.verified(secret)  # raises if any signature does not verify
        accepted_ids = Counter(r.headers.get("webhook-id") for r, status in zip(
            receiver.requests, receiver.statuses, strict=True) if status == 200)
        report.found(f"{len(attempts)} attempts for {len(deliveries)} deliveries: {refused} refused while down, "
                     f"attempts per delivery {sorted(len(t) for t in by_delivery.values())}")
        report.found(f"receiver got {len(receiver.requests)} requests ({len(payloads)} signatures verified), "
                     f"statuses {dict(Counter(receiver.statuses))}; all settled {settled:.1f} s after it came back")
        report.found(f"retry gaps vs schedule: {len(lateness)} gaps, latest {max(lateness, default=0):+.2f} s past "
                     f"the nominal wait, earliest {min(lateness, default=0):+.2f} s")
        report.check(refused > 0 and len(receiver.requests) > 0,
                     "the outage was real (attempts refused while down, then answered)",
                     f"{refused} refused attempts, {len(receiver.requests)} answered requests")
        report.check(all(d.status == "succeeded" for d in deliveries) and len(deliveries) == messages,
                     "every delivery succeeded after the receiver returned",
                     f"{Counter(d.status for d in deliveries)}")
        report.check(len(accepted_ids) == messages and all(n == 1 for n in accepted_ids.values()),
                     "each message accepted exactly once (no redelivery after a 2xx)",
                     f"{len(accepted_ids)} messages accepted, most times one was accepted: "
                     f"{max(accepted_ids.values(), default=0)}")
        report.check(not early and bool(after_503),
                     "no retry sooner than the schedule (half the nominal backoff, or Retry-After)",
                     "; ".join(early[:3]) or "none early")
        report.check(not late, f"no retry more than {LATE_SLACK_SECONDS:g} s past its nominal backoff",
                     "; ".join(late[:3]) or "none late")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 messages, 6 s down, backoff 0.5 s to 4 s (CI)")
    ap.add_argument("--messages", type=int, default=None, help="events emitted while the receiver is down")
    ap.add_argument("--down", type=float, default=None, help="seconds the receiver stays down (default 40)")
    args = ap.parse_args(argv)
    report = Report("webhook_down")
    try:
        if args.quick:
            run(report, args.messages or 3, args.down or 6.0, retry_after=2, base=0.5, cap=4.0)
        else:
            run(report, args.messages or 5, args.down or 40.0, retry_after=3, base=1.0, cap=20.0)
    except Timeout as exc:
        report.fail(str(exc))
    return report.finish()


if __name__ == "__main__":
    raise SystemExit(main())
