"""Inputs that used to answer 500 (issue #18, finding 6 and the metadata numbers of finding 8): extreme time
offsets, JSON nested past the parser's limit with `\\u` escapes, lone surrogates in keys, numbers JSON or the
database cannot hold. Each must be a 422 naming the field, with nothing stored."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.models import Event
from monitor.projects.service import CreatedKey, get_project
from monitor.settings import DEFAULT_SECRET, Settings, secret_key_problem
from monitor.timestamps import TimeRangeError, parse_utc, to_utc
from tests.support.collector import CollectorProcess
from tests.support.factories import event_dict, make_key

EXTREME_TIMES = ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "1969-12-31T23:59:59Z",
                 "9999-06-01T00:00:00Z", "0001-01-01T00:00:00Z"]


@pytest.fixture
def key(session: Session) -> CreatedKey:
    created = make_key(session, scopes=("ingest", "read"))
    session.commit()
    return created


def _auth(key: CreatedKey) -> dict[str, str]:
    return {"Authorization": f"Bearer {key.key}", "Content-Type": "application/json"}


def _events(session: Session, key: CreatedKey) -> int:
    session.expire_all()
    pid = get_project(session, key.project_slug).id
    return int(session.scalar(select(func.count()).select_from(Event).where(Event.project_id == pid)) or 0)


def _fields(r: Any) -> list[str]:
    return [d["field"] for d in r.json()["detail"]]


def test_to_utc_converts_offsets_and_refuses_values_outside_the_range() -> None:
    assert to_utc(datetime.fromisoformat("2026-01-01T05:30:00+05:30")) == datetime(2026, 1, 1, tzinfo=UTC)
    assert to_utc(datetime(2026, 1, 1)) == datetime(2026, 1, 1, tzinfo=UTC)  # naive = UTC
    assert to_utc(datetime.fromisoformat("1970-01-01T00:00:00Z")).year == 1970
    for text in EXTREME_TIMES:
        with pytest.raises(TimeRangeError):
            to_utc(datetime.fromisoformat(text))
    with pytest.raises(ValueError, match="time zone"):
        parse_utc("2026-01-01T00:00:00")


@pytest.mark.parametrize("ts", EXTREME_TIMES)
def test_extreme_event_and_feedback_timestamps_are_422(client: TestClient, session: Session, key: CreatedKey,
                                                        ts: str) -> None:
    r = client.post("/v1/events", content=json.dumps({"events": [event_dict(event_id="e1", timestamp=ts)]}),
                    headers=_auth(key))
    assert r.status_code == 422, r.text
    assert _fields(r) == ["events[0].timestamp"]
    assert "supported range" in r.json()["detail"][0]["message"]
    fb = {"feedback_id": "f1", "event_id": "e1", "label": "ok", "timestamp": ts}
    r = client.post("/v1/feedback", content=json.dumps({"feedback": [fb]}), headers=_auth(key))
    assert r.status_code == 422, r.text
    assert _fields(r) == ["feedback[0].timestamp"]
    assert _events(session, key) == 0


def test_an_offset_timestamp_in_range_is_stored_in_utc(client: TestClient, session: Session, key: CreatedKey) -> None:
    event = event_dict(event_id="e-offset", timestamp="2026-03-01T01:00:00+23:59")
    r = client.post("/v1/events", content=json.dumps({"events": [event]}), headers=_auth(key))
    assert r.status_code == 200, r.text
    row = session.scalar(select(Event).where(Event.client_event_id == "e-offset"))
    assert row is not None and row.ts == datetime(2026, 2, 28, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("ts", ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59"])
@pytest.mark.parametrize("param", ["start", "end"])
def test_extreme_metric_query_times_are_422(client: TestClient, key: CreatedKey, ts: str, param: str) -> None:
    r = client.get("/v1/metrics", params={param: ts}, headers=_auth(key))
    assert r.status_code == 422, r.text
    assert _fields(r) == [f"query.{param}"]


def _deep(depth: int, leaf: str) -> str:
    return '{"a":' * depth + leaf + "}" * depth


@pytest.mark.parametrize("depth", [300, 5_000, 100_000])
def test_deep_metadata_with_unicode_escapes_is_422(client: TestClient, session: Session, key: CreatedKey,
                                                    depth: int) -> None:
    event = json.dumps(event_dict(event_id="deep"))[:-1] + ', "metadata": ' + _deep(depth, '"\\u00e9"') + "}"
    r = client.post("/v1/events", content='{"events": [' + event + "]}", headers=_auth(key))
    assert r.status_code == 422, r.text[:300]
    assert "recursion" in r.json()["detail"][0]["message"] or "nested" in r.json()["detail"][0]["message"]
    assert _events(session, key) == 0


@pytest.mark.parametrize("lone", ["\\udfff", "\\ud800", "\\udbff\\u0041"])
def test_lone_surrogate_in_a_metadata_key_is_a_422_that_encodes(client: TestClient, session: Session,
                                                                 key: CreatedKey, lone: str) -> None:
    event = json.dumps(event_dict(event_id="sur"))[:-1] + ', "metadata": {"' + lone + '": 1}}'
    r = client.post("/v1/events", content='{"events": [' + event + "]}", headers=_auth(key))
    assert r.status_code == 422, r.text
    (problem,) = r.json()["detail"]
    assert "surrogate" in problem["message"]
    assert problem["field"].startswith("events[0].metadata.") and "\\ud" in problem["field"]
    assert _events(session, key) == 0


@pytest.mark.parametrize(("literal", "what"), [
    ("NaN", "nan"), ("Infinity", "inf"), ("-Infinity", "-inf"),
    ("123456789012345678901234567890", "64-bit"), ("9223372036854775808", "64-bit"),
    ("-9223372036854775809", "64-bit"),
])
def test_unstorable_metadata_numbers_are_refused_naming_the_key(client: TestClient, session: Session,
                                                                 key: CreatedKey, literal: str, what: str) -> None:
    event = json.dumps(event_dict(event_id="num"))[:-1] + ', "metadata": {"outer": {"n": [1, ' + literal + "]}}}"
    r = client.post("/v1/events", content='{"events": [' + event + "]}", headers=_auth(key))
    assert r.status_code == 422, r.text
    (problem,) = r.json()["detail"]
    assert problem["field"] == "events[0].metadata"
    assert "outer.n[1]" in problem["message"] and what in problem["message"]
    assert _events(session, key) == 0


def test_numbers_at_the_64_bit_edges_are_stored_exactly(client: TestClient, session: Session,
                                                         key: CreatedKey) -> None:
    meta = {"max": 2**63 - 1, "min": -(2**63), "float": 2.5, "null": None}
    r = client.post("/v1/events", content=json.dumps({"events": [event_dict(event_id="edge", metadata=meta)]}),
                    headers=_auth(key))
    assert r.status_code == 200, r.text
    row = session.scalar(select(Event).where(Event.client_event_id == "edge"))
    assert row is not None and row.meta == meta


# Finding 8: header size (431) and the production secret key rule.
def test_oversized_headers_are_431_before_authentication(client: TestClient, key: CreatedKey) -> None:
    big = {"X-Padding": "a" * 40_000}
    r = client.get("/healthz", headers=big)
    assert r.status_code == 431 and "DRIFTLOOP_MAX_HEADER_BYTES" in r.json()["detail"]
    r = client.post("/v1/events", content=b"{}", headers={**_auth(key), **big})
    assert r.status_code == 431
    many = {f"X-H{i}": "v" * 100 for i in range(400)}  # many small headers add up the same way
    assert client.get("/healthz", headers=many).status_code == 431
    assert client.get("/healthz", headers={"X-Padding": "a" * 20_000}).status_code == 200


def test_the_header_limit_is_a_setting(settings: Settings, connection: Any) -> None:
    from monitor.api.app import create_app

    app = create_app(settings.model_copy(update={"max_header_bytes": 2048}), engine=connection.engine)
    with TestClient(app) as c:
        assert c.get("/healthz", headers={"X-Padding": "a" * 1500}).status_code == 200
        assert c.get("/healthz", headers={"X-Padding": "a" * 2100}).status_code == 431


@pytest.mark.postgres
def test_driftloop_serve_cuts_off_an_8_mb_header(pg_url: str, tmp_path: Path) -> None:
    collector = CollectorProcess(pg_url, tmp_path / "collector.log")
    collector.start()
    try:
        with socket.create_connection(("127.0.0.1", collector.port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: ")
            sent, answer = 0, b""
            chunk = b"a" * 65_536
            try:
                while sent < 8 * 1024 * 1024:  # the server answers (and closes) long before the 8 MB are sent
                    sock.sendall(chunk)
                    sent += len(chunk)
            except OSError:  # connection reset: the server stopped reading
                pass
            sock.settimeout(10)
            with contextlib.suppress(OSError):
                answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 4"), answer[:200]
        assert sent < 8 * 1024 * 1024 or answer  # refused, not served
        assert httpx.get(f"{collector.url}/healthz", headers={"X-Padding": "a" * 40_000}).status_code == 431
        assert httpx.get(f"{collector.url}/healthz").status_code == 200
    finally:
        collector.stop()


@pytest.mark.parametrize(("secret", "reason"), [
    ("x", "bytes long"), ("a" * 64, "distinct characters"), ("abababababababababababababababab12", "distinct"),
    (DEFAULT_SECRET, "built-in default"),
])
def test_production_refuses_weak_secret_keys(secret: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        Settings(mode="production", secret_key=secret)
    assert Settings(mode="local", secret_key=secret).secret_key == secret  # local development stays easy


def test_production_accepts_a_random_secret_key() -> None:
    assert secret_key_problem(secrets.token_hex(32)) is None
    assert Settings(mode="production", secret_key=secrets.token_urlsafe(32)).mode == "production"


def test_driftloop_serve_refuses_a_weak_secret_at_start(tmp_path: Path) -> None:
    env = {**os.environ, "DRIFTLOOP_MODE": "production", "DRIFTLOOP_SECRET_KEY": "short-secret",
           "DRIFTLOOP_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    out = subprocess.run([sys.executable, "-m", "monitor.cli", "serve", "--no-migrate", "--port", "1"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "DRIFTLOOP_SECRET_KEY is 12 bytes long" in out.stdout + out.stderr


# The same classes on every other way a time comes in (found by the audit for closing issue #18): event search
# parameters and its cursor, a silence's end, a pinned reference range. 422 naming the field, both backends.
@pytest.mark.parametrize("ts", ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59"])
@pytest.mark.parametrize("param", ["start", "end", "window", "cluster_window"])
def test_extreme_event_search_times_are_422(client: TestClient, key: CreatedKey, ts: str, param: str) -> None:
    r = client.get("/v1/events", params={param: ts}, headers=_auth(key))
    assert r.status_code == 422, r.text
    assert _fields(r) == [param] and "supported range" in r.json()["detail"][0]["message"]


def test_a_forged_cursor_with_an_extreme_time_is_422(client: TestClient, key: CreatedKey) -> None:
    import base64

    forged = base64.urlsafe_b64encode(b"0001-01-01T00:00:00+23:59|1").decode().rstrip("=")
    r = client.get("/v1/events", params={"cursor": forged}, headers=_auth(key))
    assert r.status_code == 422, r.text
    assert _fields(r) == ["cursor"]


@pytest.mark.parametrize("ts", ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59"])
def test_extreme_silence_ends_are_422(client: TestClient, session: Session, ts: str) -> None:
    admin = make_key(session)
    session.commit()
    r = client.post("/v1/alert-silences", json={"segment": "tier=gold", "until": ts},
                    headers={"Authorization": f"Bearer {admin.key}"})
    assert r.status_code == 422, r.text
    assert _fields(r) == ["until"] and "supported range" in r.json()["detail"][0]["message"]


@pytest.mark.parametrize("ts", ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59"])
def test_extreme_reference_ranges_are_422(client: TestClient, session: Session, ts: str) -> None:
    admin = make_key(session)
    session.commit()
    ref = {"kind": "range", "start": ts, "end": "2026-01-01T00:00:00Z"} if ts.startswith("0001") else \
        {"kind": "range", "start": "2026-01-01T00:00:00Z", "end": ts}
    r = client.patch("/v1/project/config", json={"reference": ref}, headers={"Authorization": f"Bearer {admin.key}"})
    assert r.status_code == 422, r.text
    (problem,) = r.json()["detail"]
    assert problem["field"].startswith("reference.") and "supported range" in problem["message"]
