"""End to end on real Redis + a real Celery worker process + Postgres + a real HTTP receiver on 127.0.0.1.

A drift rule breaches: the window-finish task (the last step of every production window chain) runs in the
worker, its hook queues rule evaluation after commit, evaluation fires the alert and queues the webhook
delivery after commit. The receiver answers 500, 500, then 200: the log shows three attempts and one
delivery, each request signed so the receiver verifies it. The next breaching window does not fire again;
the metric recovers and `alert.resolved` arrives once, also when the window is evaluated again.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerts.models import AlertActionRequest
from monitor.alerts.rule_service import create_rule
from monitor.alerts.rules import RuleSpec
from monitor.db import utcnow
from monitor.projects.service import get_or_create_project
from monitor.settings import Settings
from monitor.webhooks.endpoints import EndpointSpec, create_endpoint
from monitor.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookMessage
from tests.support.celery_env import celery_settings, kill_worker, start_worker
from tests.support.factories import unique_slug
from tests.support.metric_windows import drift_point, window, write_window
from tests.support.waiting import wait_for
from tests.support.webhook_receiver import Receiver

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]


@pytest.fixture
def celery_env(pg_url: str, redis_url: str, celery_key_prefix: str,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    with celery_settings(monkeypatch, pg_url, redis_url, celery_key_prefix, extra={
        "DRIFTLOOP_WEBHOOK_ALLOW_PRIVATE": "true",
        "DRIFTLOOP_WEBHOOK_BACKOFF_BASE_SECONDS": "0.2",  # small backoff: the retries come within a second
        "DRIFTLOOP_WEBHOOK_BACKOFF_CAP_SECONDS": "1",
        # The worker would otherwise handle the rule's retrain action (its wiring installs the handler);
        # this test is about the request being recorded, so the handler stays off here.
        "DRIFTLOOP_RETRAIN_ON_ALERT": "false",
    }) as env:
        yield env


def finish_in_worker(project_id: int, i: int) -> None:
    """Run the production window-finish step in the worker and wait for it (its hooks queue evaluation)."""
    from monitor.worker.tasks import finish_window_task

    result = finish_window_task.apply_async(args=[project_id, window(i).isoformat(), utcnow().isoformat()],
                                            queue="default")
    result.get(timeout=60)


def evaluate_again_in_worker(project_id: int, i: int) -> None:
    """A duplicate evaluation (a re-delivered task). With one worker process and a FIFO queue it also runs
    after the evaluation the hook queued before it, so when it returns, both are done."""
    from monitor.alerts.tasks import evaluate_rules_task

    evaluate_rules_task.apply_async(args=[project_id, window(i).isoformat()], queue="default").get(timeout=60)


def messages(engine: Engine, project_id: int) -> list[str]:
    with Session(engine) as s:
        return list(s.scalars(select(WebhookMessage.event_type).where(WebhookMessage.project_id == project_id)
                              .order_by(WebhookMessage.id)))


def test_drift_alert_fires_retries_and_resolves_once(
    celery_env: dict[str, str], pg_engine: Engine, receiver: Receiver, tmp_path: Path,
) -> None:
    settings = Settings()
    factory = sessionmaker(bind=pg_engine, expire_on_commit=False)
    with factory() as s:
        pid = get_or_create_project(s, unique_slug()).id
        secret = create_endpoint(s, pid, EndpointSpec(name="oncall", url=receiver.url), settings=settings).secret
        create_rule(s, pid, RuleSpec.model_validate({
            "name": "prompt-drift", "metric": "drift.prompt.mmd", "field": "p_value", "comparator": "<",
            "threshold": 0.01, "severity": "critical",
            "actions": [{"type": "webhook", "endpoints": ["oncall"]}, {"type": "retrain"}]}))
        s.commit()
    receiver.answer(500, 500)  # then 200
    worker = start_worker(celery_env, tmp_path / "worker.log")
    try:
        started: datetime = utcnow()
        write_window(factory, pid, 0, [drift_point(0.0004)])
        finish_in_worker(pid, 0)
        wait_for(lambda: receiver.count() >= 3, 60, "three delivery attempts")
        with Session(pg_engine) as s:
            [delivery] = s.scalars(select(WebhookDelivery).where(WebhookDelivery.project_id == pid)).all()
            wait_for(lambda: s.get(WebhookDelivery, delivery.id, populate_existing=True).status == "succeeded",  # type: ignore[union-attr]
                     30, "the delivery to be marked succeeded")
            log = s.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery.id)
                            .order_by(WebhookAttempt.attempt)).all()
            assert [(a.attempt, a.status_code, a.outcome) for a in log] == [
                (1, 500, "retry"), (2, 500, "retry"), (3, 200, "succeeded")]
            assert all(a.started_at >= started for a in log)
            [request] = s.scalars(select(AlertActionRequest).where(AlertActionRequest.project_id == pid)).all()
            assert request.action == "retrain" and request.status == "pending"  # no handler in this worker
        payloads = receiver.verified(secret)
        assert [p["type"] for p in payloads] == ["alert.firing"] * 3
        assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
        assert payloads[0]["data"]["observed"] == 0.0004 and payloads[0]["data"]["alert"]["severity"] == "critical"

        # Still breaching: no second firing.
        write_window(factory, pid, 1, [drift_point(0.002)])
        finish_in_worker(pid, 1)
        evaluate_again_in_worker(pid, 1)
        assert messages(pg_engine, pid) == ["alert.firing"]

        # Recovered: alert.resolved arrives once, also when the window is finished and evaluated again.
        write_window(factory, pid, 2, [drift_point(0.6)])
        finish_in_worker(pid, 2)
        wait_for(lambda: receiver.count() >= 4, 60, "the alert.resolved delivery")
        finish_in_worker(pid, 2)
        evaluate_again_in_worker(pid, 2)
        assert messages(pg_engine, pid) == ["alert.firing", "alert.resolved"]
        payloads = receiver.verified(secret)
        assert [p["type"] for p in payloads] == ["alert.firing"] * 3 + ["alert.resolved"]
        assert payloads[-1]["data"]["evidence"][0]["p_value"] == 0.6
    finally:
        kill_worker(worker)
    assert receiver.count() == 4
