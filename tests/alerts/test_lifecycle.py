"""Alert lifecycle through the production trigger (the runner's window-finish hook), on both backends:
pending → firing → resolved with stored evidence, webhooks once per transition, idempotent re-evaluation,
glob segments, and action requests (exactly one retraining request per firing)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerts.actions import register_action_handler, run_pending_actions, unregister_action_handler
from monitor.alerts.evaluation import evaluate_window
from monitor.alerts.models import Alert, AlertActionRequest, AlertTransition
from monitor.alerts.queries import alert_views, list_alerts
from monitor.alerts.rule_service import create_rule
from monitor.alerts.rules import RuleSpec
from monitor.models import Project
from monitor.pipeline.ops import MetricPoint
from monitor.settings import Settings
from monitor.webhooks.endpoints import EndpointSpec, create_endpoint
from monitor.webhooks.models import WebhookDelivery
from tests.support.metric_windows import drift_point, finish, window, write_window
from tests.support.webhook_receiver import Receiver


@pytest.fixture
def jobs() -> Iterator[list[int]]:
    """A stand-in for the retraining pipeline's handler: records one 'job' per request it is given."""
    created: list[int] = []

    def handler(session: Session, request: AlertActionRequest) -> dict[str, Any]:
        created.append(request.id)
        return {"job": len(created)}

    register_action_handler("retrain", handler)
    yield created
    unregister_action_handler("retrain")


def setup_rule(session: Session, project: Project, receiver: Receiver, settings: Settings, **rule: Any) -> str:
    secret = create_endpoint(session, project.id, EndpointSpec(name="oncall", url=receiver.url),
                             settings=settings).secret
    spec = {"name": "prompt-drift", "metric": "drift.prompt.mmd", "field": "p_value", "comparator": "<",
            "threshold": 0.01, "actions": [{"type": "webhook", "endpoints": ["oncall"]}], **rule}
    create_rule(session, project.id, RuleSpec.model_validate(spec))
    session.commit()
    return secret


def transitions(session: Session, project: Project) -> list[tuple[str, str, str, str]]:
    session.expire_all()
    rows = session.execute(
        select(AlertTransition, Alert).join(Alert, Alert.id == AlertTransition.alert_id)
        .where(Alert.project_id == project.id).order_by(AlertTransition.id)).all()
    return [(a.segment, t.window_start.strftime("%H"), t.from_status, t.to_status) for t, a in rows]


def test_pending_firing_resolved_with_evidence_and_one_webhook_each(
    session: Session, session_maker: sessionmaker[Session], project: Project, receiver: Receiver,
    local_hooks: Settings, jobs: list[int],
) -> None:
    secret = setup_rule(session, project, receiver, local_hooks, for_windows=2,
                        actions=[{"type": "webhook", "endpoints": ["oncall"]}, {"type": "retrain"}])
    series = [0.5, 0.001, None, 0.002, 0.003, 0.4]  # None: an insufficient window (skipped)
    for i, p in enumerate(series):
        write_window(session_maker, project.id, i, [drift_point(p)])
        finish(session_maker, project.id, i)
    assert transitions(session, project) == [("all", "01", "inactive", "pending"), ("all", "03", "pending", "firing"),
                                             ("all", "05", "firing", "resolved")]
    [view] = alert_views(session, list_alerts(session, project.id))
    assert view["status"] == "resolved" and view["fired_window"] == window(3).isoformat()
    firing = view["transitions"][1]
    assert [e["p_value"] for e in firing["evidence"]] == [0.001, 0.002]  # the rows that made it fire
    assert "p_value=0.002 breaches p_value < 0.01" in firing["reason"]
    payloads = receiver.verified(secret)
    assert [p["type"] for p in payloads] == ["alert.firing", "alert.resolved"]
    assert payloads[0]["data"]["observed"] == 0.002 and payloads[0]["data"]["alert"]["rule"] == "prompt-drift"
    assert payloads[1]["data"]["evidence"][0]["p_value"] == 0.4
    assert len(jobs) == 1 and view["actions"][0]["status"] == "done"

    # Re-running finished windows (late re-computations, a re-delivered task) changes nothing.
    for i in range(len(series)):
        finish(session_maker, project.id, i)
        evaluate_window(session, project.id, window(i))
    session.commit()
    assert len(transitions(session, project)) == 3 and receiver.count() == 2 and len(jobs) == 1


def test_retrain_action_creates_exactly_one_request_per_firing_not_per_window(
    session: Session, session_maker: sessionmaker[Session], project: Project, receiver: Receiver,
    local_hooks: Settings, jobs: list[int],
) -> None:
    setup_rule(session, project, receiver, local_hooks,
               actions=[{"type": "retrain", "params": {"epochs": 1}}])
    series = [0.001, 0.001, 0.001, 0.001, 0.5, 0.001, 0.001, 0.001]  # two episodes, 7 breaching windows
    for i, p in enumerate(series):
        write_window(session_maker, project.id, i, [drift_point(p)])
        finish(session_maker, project.id, i)
        finish(session_maker, project.id, i)  # each window twice: still one request per firing
    session.expire_all()
    requests = session.scalars(select(AlertActionRequest).where(AlertActionRequest.project_id == project.id)
                               .order_by(AlertActionRequest.id)).all()
    firings = [t for t in transitions(session, project) if t[3] == "firing"]
    assert [t[1] for t in firings] == ["00", "05"]
    assert len(requests) == 2 and len({r.transition_id for r in requests}) == 2
    assert [r.params for r in requests] == [{"epochs": 1}] * 2 and {r.status for r in requests} == {"done"}
    assert jobs == [r.id for r in requests]  # the handler ran once per request
    assert receiver.count() == 0  # this rule has no webhook action


def test_without_a_handler_requests_stay_pending_until_one_is_registered(
    session: Session, session_maker: sessionmaker[Session], project: Project, receiver: Receiver,
    local_hooks: Settings,
) -> None:
    setup_rule(session, project, receiver, local_hooks, actions=[{"type": "retrain"}])
    write_window(session_maker, project.id, 0, [drift_point(0.001)])
    finish(session_maker, project.id, 0)
    session.expire_all()
    [request] = session.scalars(select(AlertActionRequest).where(AlertActionRequest.project_id == project.id)).all()
    assert request.status == "pending"

    def broken(session: Session, request: AlertActionRequest) -> None:
        raise RuntimeError("no GPU budget left")

    register_action_handler("retrain", broken)
    try:
        assert run_pending_actions(session, project.id) == 1
        session.commit()
    finally:
        unregister_action_handler("retrain")
    session.refresh(request)
    assert request.status == "failed" and request.error == "RuntimeError: no GPU budget left"
    assert [t[3] for t in transitions(session, project)] == ["firing"]  # the alert itself stands


def test_glob_segments_get_one_alert_each(
    session: Session, session_maker: sessionmaker[Session], project: Project, receiver: Receiver,
    local_hooks: Settings,
) -> None:
    setup_rule(session, project, receiver, local_hooks, segment="model_version=*")
    write_window(session_maker, project.id, 0, [drift_point(0.001)], segment="all")  # not matched by the glob
    write_window(session_maker, project.id, 0, [drift_point(0.001)], segment="model_version=v1")
    write_window(session_maker, project.id, 0, [drift_point(0.9)], segment="model_version=v2")
    finish(session_maker, project.id, 0)
    write_window(session_maker, project.id, 1, [drift_point(0.002)], segment="model_version=v2")
    finish(session_maker, project.id, 1)
    assert transitions(session, project) == [("model_version=v1", "00", "inactive", "firing"),
                                             ("model_version=v2", "01", "inactive", "firing")]
    segments = [json.loads(r.body)["data"]["alert"]["segment"] for r in receiver.requests]
    assert segments == ["model_version=v1", "model_version=v2"]


def test_disabled_rules_and_other_metrics_are_ignored(
    session: Session, session_maker: sessionmaker[Session], project: Project, receiver: Receiver,
    local_hooks: Settings,
) -> None:
    setup_rule(session, project, receiver, local_hooks, enabled=False)
    create_rule(session, project.id, RuleSpec.model_validate(
        {"name": "slow", "metric": "ops.latency_p95", "comparator": ">", "threshold": 1000}))
    session.commit()
    write_window(session_maker, project.id, 0, [drift_point(0.001), MetricPoint("ops.latency_p95", "ok", 50,
                                                                                 value=200.0)])
    finish(session_maker, project.id, 0)
    assert transitions(session, project) == []
    assert session.scalar(select(func.count()).select_from(WebhookDelivery)
                          .where(WebhookDelivery.project_id == project.id)) == 0
