"""The collector's ingestion endpoints, on Postgres and on SQLite."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.models import Event, Feedback
from monitor.projects.service import get_project, revoke_key
from monitor.settings import Settings
from tests.support.factories import event_dict, feedback_dict, make_key


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _count(session: Session, model: type[Event] | type[Feedback], slug: str) -> int:
    project = get_project(session, slug)
    return int(session.scalar(select(func.count()).select_from(model).where(model.project_id == project.id)) or 0)


@pytest.fixture
def key(session: Session):  # type: ignore[no-untyped-def]
    created = make_key(session)
    session.commit()
    return created


def test_same_batch_twice_is_stored_once(client: TestClient, session: Session, key) -> None:  # type: ignore[no-untyped-def]
    batch = {"events": [event_dict() for _ in range(50)]}
    first = client.post("/v1/events", json=batch, headers=_auth(key.key))
    second = client.post("/v1/events", json=batch, headers=_auth(key.key))
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": 50, "duplicates": 0}
    assert second.json() == {"accepted": 0, "duplicates": 50}
    assert _count(session, Event, key.project_slug) == 50
    ids = session.scalars(select(Event.client_event_id)).all()
    assert sorted(i for i in ids if i in {e["event_id"] for e in batch["events"]}) == sorted(
        e["event_id"] for e in batch["events"]
    )


def test_event_fields_round_trip(client: TestClient, session: Session, key) -> None:  # type: ignore[no-untyped-def]
    e = event_dict(prompt="¿Dónde está mi pedido? 📦 שלום", error=None, metadata={"locale": "es", "n": [1, 2]})
    assert client.post("/v1/events", json={"events": [e]}, headers=_auth(key.key)).status_code == 200
    row = session.scalar(select(Event).where(Event.client_event_id == e["event_id"]))
    assert row is not None
    assert row.prompt == e["prompt"] and row.response == e["response"]
    assert row.meta == {"locale": "es", "n": [1, 2]}
    assert row.ts.isoformat() == "2026-11-22T10:00:00+00:00"
    assert row.latency_ms == 412.5 and row.prompt_tokens == 12 and row.model_version == "v1"


def test_duplicates_inside_one_batch_count_once(client: TestClient, session: Session, key) -> None:  # type: ignore[no-untyped-def]
    e = event_dict()
    r = client.post("/v1/events", json={"events": [e, e, event_dict()]}, headers=_auth(key.key))
    assert r.json() == {"accepted": 2, "duplicates": 1}


def test_gzip_body_is_accepted(client: TestClient, session: Session, key) -> None:  # type: ignore[no-untyped-def]
    body = gzip.compress(json.dumps({"events": [event_dict() for _ in range(10)]}).encode())
    r = client.post("/v1/events", content=body,
                    headers={**_auth(key.key), "Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 10


@pytest.mark.parametrize(
    ("mutate", "status", "needle"),
    [
        (lambda b: b["events"][1].update(prompt="x" * 2_000), 422, "events[1].prompt"),
        (lambda b: b["events"][2].update(latency_ms=-5), 422, "events[2].latency_ms"),
        (lambda b: b["events"][0].pop("event_id"), 422, "events[0].event_id"),
        (lambda b: b["events"][0].update(event_id="has space"), 422, "events[0].event_id"),
        (lambda b: b["events"][3].update(surprise=1), 422, "events[3].surprise"),
        (lambda b: b["events"][1].update(response="nul\x00byte"), 422, "NUL"),
        (lambda b: b["events"][1].update(metadata={"k": "v" * 600}), 422, "events[1].metadata"),
        (lambda b: b["events"].extend(event_dict() for _ in range(20)), 413, "limit is 10 per batch"),
        (lambda b: b.update(events=[]), 422, "events"),
    ],
)
def test_invalid_batch_is_refused_whole(  # type: ignore[no-untyped-def]
    settings: Settings, client: TestClient, session: Session, key, mutate, status: int, needle: str
) -> None:
    client.app.state.settings = settings.model_copy(  # type: ignore[attr-defined]
        update={"max_text_chars": 1_000, "max_batch_events": 10, "max_metadata_bytes": 512}
    )
    batch = {"events": [event_dict() for _ in range(5)]}
    mutate(batch)
    r = client.post("/v1/events", json=batch, headers=_auth(key.key))
    assert r.status_code == status, r.text
    assert needle in r.text
    assert _count(session, Event, key.project_slug) == 0


def test_malformed_and_oversized_bodies(settings: Settings, client: TestClient, session: Session, key) -> None:  # type: ignore[no-untyped-def]
    client.app.state.settings = settings.model_copy(update={"max_body_bytes": 4096})  # type: ignore[attr-defined]
    h = {**_auth(key.key), "Content-Type": "application/json"}
    r = client.post("/v1/events", content=b'{"events": [', headers=h)
    assert r.status_code == 422 and "Invalid JSON" in r.text
    r = client.post("/v1/events", content=b'{"events": "nope"}', headers=h)
    assert r.status_code == 422 and "events" in r.text
    r = client.post("/v1/events", content=json.dumps({"events": [event_dict(prompt="x" * 5000)]}).encode(), headers=h)
    assert r.status_code == 413 and "limit is 4096" in r.text
    r = client.post("/v1/events", content=b"\x1f\x8b garbage", headers={**h, "Content-Encoding": "gzip"})
    assert r.status_code == 400 and "not valid gzip" in r.text
    bomb = zlib.compress(b" " * 3_000_000, 9)  # ~3 KB that inflates to 3 MB
    r = client.post("/v1/events", content=bomb, headers={**h, "Content-Encoding": "deflate"})
    assert r.status_code == 413 and "decompressed" in r.text
    r = client.post("/v1/events", content=b"{}", headers={**h, "Content-Encoding": "br"})
    assert r.status_code == 415
    lone_surrogate = b'{"events": [{"event_id": "a", "prompt": "\\ud800"}]}'
    r = client.post("/v1/events", content=lone_surrogate, headers=h)
    assert r.status_code == 422
    assert _count(session, Event, key.project_slug) == 0


def test_keys_are_scoped_to_their_project(client: TestClient, session: Session) -> None:
    a, b = make_key(session), make_key(session)
    session.commit()
    r = client.post("/v1/events", json={"events": [event_dict()]},
                    headers={**_auth(a.key), "X-Driftloop-Project": b.project_slug})
    assert r.status_code == 403 and a.project_slug in r.text
    r = client.post("/v1/events", json={"events": [event_dict()]}, headers=_auth(a.key))
    assert r.status_code == 200
    assert _count(session, Event, b.project_slug) == 0
    assert _count(session, Event, a.project_slug) == 1


@pytest.mark.parametrize("header", [None, "Bearer", "Basic abc", "Bearer dl_nope_nope", "Bearer not-a-key"])
def test_missing_or_wrong_keys_are_refused(client: TestClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    r = client.post("/v1/events", json={"events": [event_dict()]}, headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"


def test_revoked_key_is_refused(client: TestClient, session: Session, key) -> None:  # type: ignore[no-untyped-def]
    assert client.post("/v1/events", json={"events": [event_dict()]}, headers=_auth(key.key)).status_code == 200
    revoke_key(session, key.prefix)
    session.commit()
    r = client.post("/v1/events", json={"events": [event_dict()]}, headers=_auth(key.key))
    assert r.status_code == 401 and "revoked" in r.text
    assert _count(session, Event, key.project_slug) == 1


def test_feedback_before_its_event_is_kept(client: TestClient, session: Session, key) -> None:  # type: ignore[no-untyped-def]
    e = event_dict()
    fb = feedback_dict(e["event_id"], score=0.0, label="thumbs_down", corrected_response="Use the reset link.")
    r = client.post("/v1/feedback", json={"feedback": [fb]}, headers=_auth(key.key))
    assert r.json() == {"accepted": 1, "duplicates": 0}
    assert client.post("/v1/feedback", json={"feedback": [fb]}, headers=_auth(key.key)).json()["duplicates"] == 1
    assert client.post("/v1/events", json={"events": [e]}, headers=_auth(key.key)).status_code == 200
    row = session.execute(
        select(Feedback, Event).join(Event, (Event.client_event_id == Feedback.event_client_id)
                                     & (Event.project_id == Feedback.project_id))
        .where(Feedback.client_feedback_id == fb["feedback_id"])
    ).first()
    assert row is not None
    assert row[0].corrected_response == "Use the reset link." and row[1].client_event_id == e["event_id"]


def test_feedback_needs_a_signal(client: TestClient, key) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/v1/feedback", json={"feedback": [{"feedback_id": "f", "event_id": "e"}]}, headers=_auth(key.key))
    assert r.status_code == 422 and "at least one of score" in r.text


def test_prometheus_counts_outcomes(client: TestClient, key) -> None:  # type: ignore[no-untyped-def]
    def value(outcome: str) -> float:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith(f'driftloop_ingested_items_total{{kind="event",outcome="{outcome}"}}'):
                return float(line.split()[-1])
        return 0.0

    before = {o: value(o) for o in ("accepted", "duplicate", "rejected")}
    batch = {"events": [event_dict() for _ in range(3)]}
    client.post("/v1/events", json=batch, headers=_auth(key.key))
    client.post("/v1/events", json=batch, headers=_auth(key.key))
    client.post("/v1/events", json={"events": [event_dict(latency_ms=-1), event_dict()]}, headers=_auth(key.key))
    assert value("accepted") - before["accepted"] == 3
    assert value("duplicate") - before["duplicate"] == 3
    assert value("rejected") - before["rejected"] == 2
    assert "driftloop_http_request_seconds_bucket" in client.get("/metrics").text


def test_request_metrics_are_labelled_by_route_template(client: TestClient, key) -> None:  # type: ignore[no-untyped-def]
    from prometheus_client import REGISTRY

    def count(route: str, status: str) -> float:
        labels = {"route": route, "method": "GET", "status": status}
        return REGISTRY.get_sample_value("driftloop_http_requests_total", labels) or 0.0

    before = count("/v1/alert-rules/{name}", "404"), count("unmatched", "404")
    client.get("/v1/alert-rules/one", headers=_auth(key.key))
    client.get("/v1/alert-rules/two", headers=_auth(key.key))
    client.get("/no/such/route")
    assert count("/v1/alert-rules/{name}", "404") == before[0] + 2  # one series for every rule name
    assert count("unmatched", "404") == before[1] + 1


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
