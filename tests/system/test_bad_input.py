"""Extreme input through the collector into Postgres and SQLite: stored byte for byte, or refused with a 422 that
names the field (and nothing stored). Also the cases schemathesis found, pinned as plain tests."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.models import Event, Feedback
from monitor.projects.service import CreatedKey, get_project
from monitor.webhooks.models import WebhookEndpoint
from tests.support.factories import event_dict, make_key

RTL = "\u202eمرحبا بالعالم\u202c \u200fשלום עולם\u200e \u2067كلمة\u2069"  # noqa: RUF001
EXTREME_TEXTS: dict[str, str] = {
    "empty": "",
    "whitespace only": " \t\n\r ",
    "1 MB of ASCII": "a" * 1_000_000,
    "1 MB of emoji (4 bytes each)": "😀" * 250_000,
    "right-to-left with bidi controls": RTL,
    "emoji sequences": "👩🏽‍💻🏳️‍🌈🇺🇦 e\u0301 \u0915\u094d\u0937",
    "control characters but NUL": "".join(chr(c) for c in range(1, 32)) + "\x7f\x85",
    "line and paragraph separators, BOM": "a\u2028b\u2029c\ufeffd",
    "astral plane and noncharacters": "\U0001d11e\U00010348\U000e0001\ufffe\uffff\U0010ffff",
    "JSON and SQL metacharacters": "'; DROP TABLE events; -- \"\\\\ \\u0000 %s {} $1",
}


@pytest.fixture
def key(session: Session) -> CreatedKey:
    created = make_key(session)
    session.commit()
    return created


def _auth(key: CreatedKey) -> dict[str, str]:
    return {"Authorization": f"Bearer {key.key}"}


def _stored_events(session: Session, key: CreatedKey) -> list[Event]:
    session.expire_all()
    pid = get_project(session, key.project_slug).id
    return list(session.scalars(select(Event).where(Event.project_id == pid)))


def _count(session: Session, key: CreatedKey) -> int:
    pid = get_project(session, key.project_slug).id
    events = session.scalar(select(func.count()).select_from(Event).where(Event.project_id == pid)) or 0
    feedback = session.scalar(select(func.count()).select_from(Feedback).where(Feedback.project_id == pid)) or 0
    return int(events) + int(feedback)


@pytest.mark.parametrize("text", EXTREME_TEXTS.values(), ids=EXTREME_TEXTS.keys())
def test_extreme_text_is_stored_byte_for_byte(client: TestClient, session: Session, key: CreatedKey, text: str) -> None:
    short = text[:4000]  # `error` allows 8,192 characters; metadata 64 KiB
    event = event_dict(prompt=text, response=text[::-1], error=short, metadata={short[:100] or "k": short[:1000]})
    r = client.post("/v1/events", json={"events": [event]}, headers=_auth(key))
    assert r.status_code == 200, r.text[:500]
    fb = {"feedback_id": "f1", "event_id": event["event_id"], "label": "l", "comment": short,
          "corrected_response": text}
    assert client.post("/v1/feedback", json={"feedback": [fb]}, headers=_auth(key)).status_code == 200
    (row,) = _stored_events(session, key)
    assert row.prompt == text and row.response == text[::-1] and row.error == short
    assert row.meta == {short[:100] or "k": short[:1000]}
    assert row.prompt is not None and row.prompt.encode("utf-8") == text.encode("utf-8")
    feedback = session.scalar(select(Feedback).where(Feedback.client_feedback_id == "f1",
                                                     Feedback.project_id == row.project_id))
    assert feedback is not None and feedback.corrected_response == text and feedback.comment == short


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda e: e.update(prompt="before\x00after"), "events[1].prompt"),
    (lambda e: e.update(response="\x00"), "events[1].response"),
    (lambda e: e.update(model="m\x00"), "events[1]"),
    (lambda e: e.update(metadata={"k": ["ok", "x\x00"]}), "events[1].metadata"),
    (lambda e: e.update(metadata={"k\x00": 1}), "events[1].metadata"),
    (lambda e: e.update(prompt="a" * 1_000_001), "events[1].prompt"),
], ids=["prompt", "response", "short field", "metadata value", "metadata key", "1 MB + 1"])
def test_unstorable_text_is_refused_naming_the_field(
    client: TestClient, session: Session, key: CreatedKey, mutate: Any, field: str
) -> None:
    bad = event_dict()
    mutate(bad)
    r = client.post("/v1/events", json={"events": [event_dict(), bad]}, headers=_auth(key))
    assert r.status_code == 422, r.text[:300]
    fields = [d["field"] for d in r.json()["detail"]]
    assert field in fields, fields
    assert "a" * 100 not in r.text  # the input is not echoed back
    assert _count(session, key) == 0  # the whole batch refused: the good event is not stored either


def test_unpaired_surrogate_is_refused_naming_the_field(client: TestClient, session: Session, key: CreatedKey) -> None:
    good = json.dumps(event_dict())
    lone = '{"event_id": "e1", "prompt": "ok", "response": "half a pair: \\ud83d!"}'
    r = client.post("/v1/events", content=f'{{"events": [{good}, {lone}]}}',
                    headers={**_auth(key), "Content-Type": "application/json"})
    assert r.status_code == 422
    (problem,) = r.json()["detail"]
    assert problem["field"] == "events[1].response" and "unpaired UTF-16 surrogate" in problem["message"]
    assert _count(session, key) == 0
    # A correctly paired surrogate escape is just an emoji, and is stored.
    pair = '{"events": [{"event_id": "e2", "prompt": "\\ud83d\\ude00"}]}'
    ok = client.post("/v1/events", content=pair, headers={**_auth(key), "Content-Type": "application/json"})
    assert ok.status_code == 200 and _stored_events(session, key)[0].prompt == "😀"


def test_invalid_utf8_bytes_are_refused(client: TestClient, session: Session, key: CreatedKey) -> None:
    body = b'{"events": [{"event_id": "e1", "prompt": "caf\xe9"}]}'  # Latin-1, not UTF-8
    r = client.post("/v1/events", content=body, headers={**_auth(key), "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    assert _count(session, key) == 0


# ----- found by schemathesis (tests/system/test_api_fuzz.py) -----


def test_nul_in_a_query_or_path_parameter(client: TestClient, key: CreatedKey) -> None:
    # Refused before any query, the same on both backends (Postgres text cannot hold NUL; SQLite would simply
    # compare it), naming the parameter.
    for r, field in [
        (client.get("/v1/metrics", params={"metric": "ops.\x00volume"}, headers=_auth(key)), "query.metric"),
        (client.get("/v1/alert-rules/slow%00", headers=_auth(key)), "path.name"),
        (client.delete("/v1/webhook-endpoints/a%00b", headers=_auth(key)), "path.name"),
    ]:
        assert r.status_code == 422, r.text
        assert r.json()["detail"] == [{"field": field, "message": "contains a NUL character (\\u0000), which cannot "
                                       "be stored", "type": "value_error"}]


def test_nul_in_a_form_field(client: TestClient) -> None:
    # The UI's forms too (a sign-in attempt here): a 422 naming the field, not a 500 from Postgres.
    r = client.post("/ui/login", data={"username": "admin\x00", "password": "x", "nonce": "n"},
                    follow_redirects=False)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "username", r.text


@pytest.mark.parametrize("path", ["/v1/webhook-deliveries/41302749573194719232/redeliver",
                                  "/v1/webhook-deliveries/0/redeliver"])
def test_row_ids_beyond_the_database_range_are_422(client: TestClient, key: CreatedKey, path: str) -> None:
    r = client.post(path, headers=_auth(key))
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "path.delivery_id"
    far = client.get("/v1/retrain/jobs/-22679739171011943202269465411584", headers=_auth(key))
    assert far.status_code == 422 and far.json()["detail"][0]["field"] == "path.job_id"


def test_every_422_names_fields_in_one_shape(client: TestClient, key: CreatedKey) -> None:
    rule = client.post("/v1/alert-rules", json={"name": "x", "metric": "ops.volume", "op": "??"},
                       headers=_auth(key))
    bad_limit = client.get("/v1/alerts", params={"limit": 0}, headers=_auth(key))
    retrain = client.post("/v1/retrain", json={"actor": "me", "params": {"nope": 1}}, headers=_auth(key))
    for r in (rule, bad_limit, retrain):
        assert r.status_code == 422, r.text
        for problem in r.json()["detail"]:
            assert set(problem) == {"field", "message", "type"}, problem
    assert "op" in {p["field"] for p in rule.json()["detail"]}
    assert bad_limit.json()["detail"][0]["field"] == "query.limit"
    assert retrain.json()["detail"][0]["field"] == "params"


@pytest.mark.parametrize("description", ["nul \x00 inside", "lone \ud800 surrogate"])
def test_unstorable_text_in_other_bodies(client: TestClient, session: Session, key: CreatedKey,
                                         description: str) -> None:
    # Refused by the body's model on both backends (NulFreeModel for NUL, pydantic for an unpaired surrogate).
    body = json.dumps({"name": "hook", "url": "https://93.184.215.14/hook", "description": description})
    r = client.post("/v1/webhook-endpoints", content=body,
                    headers={**_auth(key), "Content-Type": "application/json"})
    stored = session.scalar(select(func.count()).select_from(WebhookEndpoint).where(
        WebhookEndpoint.project_id == get_project(session, key.project_slug).id))
    assert r.status_code == 422, r.text
    (problem,) = r.json()["detail"]
    assert problem["field"] == "description"
    assert ("NUL character" if "\x00" in description else "unicode string") in problem["message"]
    assert stored == 0
    # NUL inside a dict of a body (a retraining request's params) is refused the same way.
    r = client.post("/v1/retrain", json={"actor": "me", "params": {"lora": {"note\x00": 1}}}, headers=_auth(key))
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "params", r.text
    assert "NUL character" in r.json()["detail"][0]["message"]


def test_bodies_are_capped_on_every_route(client: TestClient, key: CreatedKey, settings: Any) -> None:
    big = {"name": "hook", "url": "https://93.184.215.14/hook", "description": "x" * settings.max_body_bytes}
    r = client.post("/v1/webhook-endpoints", json=big, headers=_auth(key))
    assert r.status_code == 413


@pytest.mark.parametrize(("escape", "message", "field"), [
    ("\\0", "NUL character", "rules[0].description"),
    # libyaml (the C loader of monitor/yaml_input.py) refuses a lone surrogate escape while parsing, naming where
    ("\\ud800", "invalid Unicode character escape", "line 2, column 97"),
])
def test_unstorable_text_in_a_yaml_rule_file(
    client: TestClient, session: Session, key: CreatedKey, escape: str, message: str, field: str
) -> None:
    # YAML escapes get past the JSON parsers: the rule's model refuses both, on both backends, naming the field.
    text = f'rules:\n  - {{name: slow, metric: ops.latency_p95, comparator: ">", threshold: 2500, ' \
           f'description: "bad {escape} text"}}\n'
    r = client.post("/v1/alert-rules/import", content=text,
                    headers={**_auth(key), "content-type": "application/yaml"})
    rules = client.get("/v1/alert-rules", headers=_auth(key)).json()
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == [{"field": field, "message": r.json()["detail"][0]["message"],
                                   "type": "value_error"}]
    assert message in r.json()["detail"][0]["message"]
    assert rules == []
