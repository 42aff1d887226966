"""Fail closed: a redactor that raises or hangs never lets a raw value reach the database, on Postgres and SQLite.
Policy `refuse` answers 503 with Retry-After and stores nothing; `withhold` stores the items with their text null.
Also: a `refuse` action is a 422 naming the field and detector, never the value; per-project config applies."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.models import Event, Feedback
from monitor.privacy import ingest as privacy_ingest
from monitor.projects.service import CreatedKey, get_project
from tests.support.factories import make_key

RAW = "jane.roe@example.net"
EVENTS = {"events": [{"event_id": f"e{i}", "prompt": f"I am {RAW}", "response": "ok",
                      "metadata": {"who": RAW}} for i in range(3)]}


class Broken:
    def __init__(self, release: threading.Event | None = None) -> None:
        self.release = release
        self.counts: dict[str, int] = {}

    def gate_searches(self) -> None:
        return None  # no gate: every text goes through may_hold_pii

    def may_hold_pii(self, text: str) -> bool:
        return True  # every text goes to value(), which crashes or hangs

    def value(self, value: Any, field: str) -> Any:
        if self.release is not None:
            self.release.wait(30)  # hangs until the test ends; the request must not wait for it
            return value  # ...and then hands back the raw text, which must not be stored any more
        raise RuntimeError("detector crashed")


@pytest.fixture
def key(session: Session) -> CreatedKey:
    created = make_key(session)
    session.commit()
    return created


def _rows(session: Session, key: CreatedKey) -> list[Event]:
    session.expire_all()
    pid = get_project(session, key.project_slug).id
    return list(session.scalars(select(Event).where(Event.project_id == pid)))


def _post(client: TestClient, key: CreatedKey, path: str = "/v1/events", body: Any = EVENTS) -> Any:
    return client.post(path, json=body, headers={"Authorization": f"Bearer {key.key}"})


def test_a_raising_redactor_refuses_the_batch(
    app_for: Any, session: Session, key: CreatedKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(privacy_ingest, "_redactor_factory", lambda p: Broken())
    r = _post(app_for(), key)
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert RAW not in r.text and _rows(session, key) == []


def test_a_hanging_redactor_refuses_the_batch_within_its_budget(
    app_for: Any, session: Session, key: CreatedKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    monkeypatch.setattr(privacy_ingest, "_redactor_factory", lambda p: Broken(release))
    monkeypatch.setattr(privacy_ingest, "MIN_BUDGET_SECONDS", 0.0)
    try:
        r = _post(app_for(pii_budget_ms=50), key)
        assert r.status_code == 503 and "timed out" in r.text
        assert _rows(session, key) == []
    finally:
        release.set()


def test_withhold_policy_stores_the_items_without_their_text(
    app_for: Any, session: Session, key: CreatedKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    monkeypatch.setattr(privacy_ingest, "_redactor_factory", lambda p: Broken(release))
    monkeypatch.setattr(privacy_ingest, "MIN_BUDGET_SECONDS", 0.0)
    try:
        r = _post(app_for(pii_on_error="withhold", pii_budget_ms=50), key)
        assert r.status_code == 200 and r.json()["accepted"] == 3
        rows = _rows(session, key)
        assert len(rows) == 3 and all(e.prompt is None and e.response is None and e.meta is None for e in rows)
    finally:
        release.set()
    monkeypatch.setattr(privacy_ingest, "_redactor_factory", lambda p: Broken())  # raising, not hanging
    fb = {"feedback": [{"feedback_id": "f1", "event_id": "e0", "score": 0, "comment": RAW}]}
    assert _post(app_for(pii_on_error="withhold"), key, "/v1/feedback", fb).status_code == 200
    session.expire_all()
    assert session.scalars(select(Feedback.comment).where(Feedback.client_feedback_id == "f1")).all() == [None]


def test_refuse_action_is_a_422_naming_field_and_detector(app_for: Any, session: Session, key: CreatedKey) -> None:
    r = _post(app_for(pii_actions="email=refuse"), key)
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "body.events[0].prompt" and "email" in r.json()["detail"][0]["message"]
    assert RAW not in r.text and _rows(session, key) == []


def test_project_config_overrides_the_global_settings(app_for: Any, session: Session, key: CreatedKey) -> None:
    project = get_project(session, key.project_slug)
    project.config = {**(project.config or {}), "privacy": {"actions": {"email": "hash"}}}
    session.commit()
    r = _post(app_for(), key)
    assert r.status_code == 200
    prompts = {e.prompt for e in _rows(session, key)}
    assert len(prompts) == 1 and str(prompts.pop()).startswith("I am <EMAIL:")  # same address, same token
    project.config = {**project.config, "privacy": {"enabled": False}}
    session.commit()
    body = {"events": [{"event_id": "plain", "prompt": f"I am {RAW}"}]}
    assert _post(app_for(), key, body=body).status_code == 200
    assert [e.prompt for e in _rows(session, key) if e.client_event_id == "plain"] == [f"I am {RAW}"]


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_redaction_counts_per_detector_and_failures_are_metrics(
    app_for: Any, key: CreatedKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`driftloop_pii_redactions_total{detector}` counts every occurrence found, whatever the action (here: two
    e-mails and a phone number per event, one card in the metadata; nothing for detectors that are off), and
    `driftloop_pii_failures_total{outcome}` each batch that failed; /metrics exposes both."""
    detectors = ("email", "phone", "card", "iban", "ip")
    before = {d: _sample("driftloop_pii_redactions_total", {"detector": d}) for d in detectors}
    body = {"events": [{"event_id": f"m{i}", "prompt": f"I am {RAW}, call +44 20 7946 0958",
                        "response": f"Noted {RAW} at 10.1.2.3", "metadata": {"card": "4111 1111 1111 1111"}}
                       for i in range(4)]}
    client = app_for(pii_actions="email=hash")  # the action does not change what is counted
    assert _post(client, key, body=body).status_code == 200
    after = {d: _sample("driftloop_pii_redactions_total", {"detector": d}) - before[d] for d in detectors}
    assert after == {"email": 8, "phone": 4, "card": 4, "iban": 0, "ip": 0}  # ip is off by default
    assert 'driftloop_pii_redactions_total{detector="email"}' in client.get("/metrics").text

    refused = _sample("driftloop_pii_failures_total", {"outcome": "refused"})
    withheld = _sample("driftloop_pii_failures_total", {"outcome": "withheld"})
    monkeypatch.setattr(privacy_ingest, "_redactor_factory", lambda p: Broken())
    assert _post(app_for(), key).status_code == 503
    assert _post(app_for(pii_on_error="withhold"), key).status_code == 200
    assert _sample("driftloop_pii_failures_total", {"outcome": "refused"}) == refused + 1
    assert _sample("driftloop_pii_failures_total", {"outcome": "withheld"}) == withheld + 1
