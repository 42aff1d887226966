"""Alert triage on both backends: acknowledge with a comment (history + `alert.acknowledged`), silence a rule or
a segment until a time (`alert.silenced`; silenced alerts record transitions but send no webhook and request no
action), lift a silence (paging resumes); the API's scopes and refusals."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerts.models import Alert, AlertActionRequest
from monitor.alerts.queries import alert_views, list_alerts
from monitor.alerts.rule_service import create_rule
from monitor.alerts.rules import RuleSpec
from monitor.alerts.triage import acknowledge, lift, silence
from monitor.db import utcnow
from monitor.errors import ConflictError, FieldError
from monitor.models import Project
from monitor.projects.service import get_project
from monitor.settings import Settings
from monitor.webhooks.dispatch import deliver_due
from monitor.webhooks.endpoints import EndpointSpec, create_endpoint
from tests.support.factories import make_key
from tests.support.metric_windows import drift_point, finish, write_window
from tests.support.webhook_receiver import Receiver


def _rule(session: Session, project: Project, receiver: Receiver, settings: Settings, **extra: Any) -> str:
    secret = create_endpoint(session, project.id, EndpointSpec(name="oncall", url=receiver.url),
                             settings=settings).secret
    spec = {"name": "prompt-drift", "metric": "drift.prompt.mmd", "field": "p_value", "comparator": "<",
            "threshold": 0.01, "actions": [{"type": "webhook", "endpoints": ["oncall"]}, {"type": "retrain"}],
            **extra}
    create_rule(session, project.id, RuleSpec.model_validate(spec))
    session.commit()
    return secret


def _types(receiver: Receiver, secret: str) -> list[str]:
    return [p["type"] for p in receiver.verified(secret)]


def test_acknowledge_is_in_the_history_and_sends_alert_acknowledged(
    session: Session, session_maker: sessionmaker[Session], project: Project, receiver: Receiver,
    local_hooks: Settings,
) -> None:
    secret = _rule(session, project, receiver, local_hooks)
    write_window(session_maker, project.id, 0, [drift_point(0.001)])
    finish(session_maker, project.id, 0)
    alert = session.scalars(select(Alert).where(Alert.project_id == project.id)).one()
    acknowledge(session, project, alert.id, actor="alice", comment="Looking at the new travel traffic.",
                settings=local_hooks)
    session.commit()
    deliver_due(factory=session_maker, settings=local_hooks)
    assert _types(receiver, secret) == ["alert.firing", "alert.acknowledged"]
    ack = receiver.verified(secret)[1]["data"]
    assert ack["acknowledgement"]["actor"] == "alice" and ack["alert"]["id"] == alert.id
    [view] = alert_views(session, list_alerts(session, project.id))
    assert [(a["actor"], a["comment"]) for a in view["acknowledgements"]] == [
        ("alice", "Looking at the new travel traffic.")]
    # A resolved alert has nothing left to acknowledge.
    write_window(session_maker, project.id, 1, [drift_point(0.5)])
    finish(session_maker, project.id, 1)
    session.expire_all()
    with pytest.raises(ConflictError):
        acknowledge(session, project, alert.id, actor="bob")


def test_a_silenced_rule_records_but_does_not_page_and_lifting_resumes(
    session: Session, session_maker: sessionmaker[Session], project: Project, receiver: Receiver,
    local_hooks: Settings,
) -> None:
    secret = _rule(session, project, receiver, local_hooks)
    sil = silence(session, project, rule="prompt-drift", until=utcnow() + timedelta(hours=2), actor="alice",
                  comment="known: marketing campaign", settings=local_hooks)
    session.commit()
    for i, p in enumerate([0.001, 0.5]):  # fires, then resolves: both while silenced
        write_window(session_maker, project.id, i, [drift_point(p)])
        finish(session_maker, project.id, i)
    deliver_due(factory=session_maker, settings=local_hooks)
    assert _types(receiver, secret) == ["alert.silenced"]  # the silence itself is announced; nothing pages
    session.expire_all()
    assert session.scalars(select(AlertActionRequest).where(AlertActionRequest.project_id == project.id)).all() == []
    [view] = alert_views(session, list_alerts(session, project.id))
    assert [t["to"] for t in view["transitions"]] == ["firing", "resolved"]  # the history is complete
    assert all(f"silenced by silence {sil.id}" in t["reason"] for t in view["transitions"])
    assert view["silenced"] and view["silences"][0]["comment"] == "known: marketing campaign"

    lift(session, project, sil.id, actor="bob")
    session.commit()
    with pytest.raises(ConflictError):
        lift(session, project, sil.id, actor="bob")
    write_window(session_maker, project.id, 2, [drift_point(0.001)])
    finish(session_maker, project.id, 2)
    deliver_due(factory=session_maker, settings=local_hooks)
    assert _types(receiver, secret) == ["alert.silenced", "alert.firing"]
    session.expire_all()
    assert len(session.scalars(select(AlertActionRequest).where(AlertActionRequest.project_id == project.id))
               .all()) == 1
    views = alert_views(session, list_alerts(session, project.id))
    assert not views[0]["silenced"] and views[0]["silences"][0]["lifted_by"] == "bob"


def test_a_segment_silence_covers_matching_segments_only(
    session: Session, session_maker: sessionmaker[Session], project: Project, receiver: Receiver,
    local_hooks: Settings,
) -> None:
    secret = _rule(session, project, receiver, local_hooks, segment="model_version=*")
    silence(session, project, rule=None, segment="model_version=v1", until=utcnow() + timedelta(hours=1),
            actor="alice")
    session.commit()
    for seg in ("model_version=v1", "model_version=v2"):
        write_window(session_maker, project.id, 0, [drift_point(0.001)], segment=seg)
    finish(session_maker, project.id, 0)
    deliver_due(factory=session_maker, settings=local_hooks)
    firing = [p["data"]["alert"]["segment"] for p in receiver.verified(secret) if p["type"] == "alert.firing"]
    assert firing == ["model_version=v2"]


def test_an_expired_silence_no_longer_applies(session: Session, session_maker: sessionmaker[Session],
                                              project: Project, receiver: Receiver, local_hooks: Settings) -> None:
    secret = _rule(session, project, receiver, local_hooks)
    sil = silence(session, project, rule="prompt-drift", until=utcnow() + timedelta(hours=1), actor="alice")
    sil.until = utcnow() - timedelta(seconds=1)  # as if its hour had passed
    session.commit()
    write_window(session_maker, project.id, 0, [drift_point(0.001)])
    finish(session_maker, project.id, 0)
    deliver_due(factory=session_maker, settings=local_hooks)
    assert "alert.firing" in _types(receiver, secret)


def test_refusals(session: Session, project: Project) -> None:
    with pytest.raises(FieldError, match="future"):
        silence(session, project, rule=None, segment="x=y", until=utcnow() - timedelta(minutes=1), actor="a")
    with pytest.raises(FieldError, match="name a rule or a segment"):
        silence(session, project, rule=None, segment="*", until=utcnow() + timedelta(minutes=1), actor="a")


def test_the_api_acknowledges_silences_lists_and_lifts(client: TestClient, session: Session,
                                                       session_maker: sessionmaker[Session]) -> None:
    admin = make_key(session)
    reader = make_key(session, admin.project_slug, name="reader", scopes="read")
    session.commit()
    project = get_project(session, admin.project_slug)
    create_rule(session, project.id, RuleSpec(name="slow", metric="drift.prompt.mmd", field="p_value",
                                              comparator="<", threshold=0.01))
    session.commit()
    write_window(session_maker, project.id, 0, [drift_point(0.001)])
    finish(session_maker, project.id, 0)
    alert_id = session.scalars(select(Alert.id).where(Alert.project_id == project.id)).one()
    a, r = {"Authorization": f"Bearer {admin.key}"}, {"Authorization": f"Bearer {reader.key}"}

    assert client.post(f"/v1/alerts/{alert_id}/ack", json={"comment": "on it"}, headers=r).status_code == 403
    ack = client.post(f"/v1/alerts/{alert_id}/ack", json={"comment": "on it", "actor": "ci"}, headers=a)
    assert ack.status_code == 201 and ack.json()["actor"] == "api:ci"
    assert client.post("/v1/alerts/999999/ack", json={}, headers=a).status_code == 404
    both = client.post("/v1/alert-silences", json={"rule": "slow", "minutes": 30, "until": "2030-01-01T00:00:00Z"},
                       headers=a)
    assert both.status_code == 422 and "until" in both.text
    unknown = client.post("/v1/alert-silences", json={"rule": "nope", "minutes": 30}, headers=a)
    assert unknown.status_code == 404
    made = client.post("/v1/alert-silences", json={"rule": "slow", "minutes": 30, "comment": "deploy"}, headers=a)
    assert made.status_code == 201, made.text
    sid = made.json()["id"]
    assert made.json()["active"] and made.json()["rule"] == "slow"
    listed = client.get("/v1/alert-silences", params={"active_only": True}, headers=r).json()
    assert [s["id"] for s in listed] == [sid]
    alerts = client.get("/v1/alerts", headers=r).json()
    assert alerts[0]["acknowledgements"][0]["comment"] == "on it" and alerts[0]["silenced"] is True
    lifted = client.post(f"/v1/alert-silences/{sid}/lift", json={"actor": "ci"}, headers=a)
    assert lifted.status_code == 200 and lifted.json()["lifted_by"] == "api:ci" and not lifted.json()["active"]
    assert client.get("/v1/alert-silences", params={"active_only": True}, headers=r).json() == []
    assert client.post(f"/v1/alert-silences/{sid}/lift", json={}, headers=a).status_code == 409
