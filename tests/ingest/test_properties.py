"""Properties of the whole ingestion path, on Postgres and SQLite: what the SDK encodes for any arguments is
stored exactly as the app passed it; any bytes sent to the OTLP route get an answer below 500; and any GenAI span
text arrives in the database unchanged (or, holding NUL, is reported in partial_success and not stored)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.api.app import create_app
from monitor.ingest.otlp import otel_event_id
from monitor.models import Event
from monitor.projects.service import CreatedKey, get_project
from monitor.sdk.items import EVENT, EVENT_FIELDS, Limits, encode_item, new_id
from monitor.sdk.wire import pack_bodies
from monitor.settings import Settings
from monitor.timestamps import TimeRangeError, to_utc
from tests.ingest.otlp.build import TRACE_ID, make_request, make_span
from tests.support.factories import make_key
from tests.support.hostile import DEEP_JSON, HOSTILE_DATETIME, HUGE_PATH_INT, LONE_SURROGATE_KEY, UNSTORABLE_NUMBER

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                           HealthCheck.too_slow])
# Anything Unicode can hold except NUL (Postgres text cannot) and lone surrogates (not Unicode scalar values).
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=400)
SHORT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=256)
JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), TEXT,
                        st.floats(allow_nan=False, allow_infinity=False, width=64))
METADATA = st.dictionaries(SHORT, st.one_of(JSON_SCALAR, st.lists(JSON_SCALAR, max_size=3)), max_size=4)


@pytest.fixture
def app_client(
    backend: str, request: pytest.FixtureRequest, connection: Connection, session_maker: sessionmaker[Session],
    tmp_path: Path,
) -> Iterator[TestClient]:
    url = request.getfixturevalue("pg_url" if backend == "postgres" else "sqlite_url")
    # Hypothesis sends requests back to back; rate limits are tested in tests/api/test_rate_limit.py.
    # Stored exactly as sent is the property: PII redaction (tests/privacy) is off here.
    app = create_app(Settings(database_url=url, data_dir=tmp_path, rate_limit_per_second=0,
                              rate_limit_events_per_second=0, pii_redaction=False), engine=connection.engine)
    app.state.session_factory = session_maker
    with TestClient(app) as client:
        yield client


@pytest.fixture
def key(session: Session) -> CreatedKey:
    created = make_key(session)
    session.commit()
    return created


def _event(session: Session, key: CreatedKey, client_id: str) -> Event | None:
    session.expire_all()
    pid = get_project(session, key.project_slug).id
    return session.scalar(select(Event).where(Event.project_id == pid, Event.client_event_id == client_id))


@PROPERTY
@given(prompt=TEXT, response=TEXT, model=st.one_of(st.none(), SHORT), metadata=st.one_of(st.none(), METADATA),
       error=st.one_of(st.none(), TEXT), latency=st.one_of(st.none(), st.floats(0, 86_400_000)),
       tokens=st.one_of(st.none(), st.integers(0, 100_000_000)),
       timestamp=st.datetimes(datetime(1971, 1, 1), datetime(2200, 1, 1), timezones=st.just(UTC)))
def test_what_the_sdk_sends_is_stored_exactly(
    app_client: TestClient, session: Session, key: CreatedKey, prompt: str, response: str, model: str | None,
    metadata: dict[str, Any] | None, error: str | None, latency: float | None, tokens: int | None,
    timestamp: datetime,
) -> None:
    event_id = new_id()
    args = {"event_id": event_id, "timestamp": timestamp, "model": model, "prompt": prompt, "response": response,
            "latency_ms": latency, "prompt_tokens": tokens, "error": error, "metadata": metadata}
    line = encode_item(EVENT, tuple(args.get(name) for name in EVENT_FIELDS), Limits())
    ((body, _),) = pack_bodies(EVENT, [line], max_items=100, max_body_bytes=16 * 1024 * 1024)
    r = app_client.post("/v1/events", content=gzip.compress(body), headers={
        "Authorization": f"Bearer {key.key}", "Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 200 and r.json() == {"accepted": 1, "duplicates": 0}, r.text
    row = _event(session, key, event_id)
    assert row is not None
    assert (row.prompt, row.response, row.model, row.error) == (prompt, response, model, error)
    assert (row.latency_ms, row.prompt_tokens, row.ts) == (latency, tokens, timestamp)
    assert _same_json(row.meta, metadata), (row.meta, metadata)


def _same_json(a: Any, b: Any) -> bool:
    """Equal as JSON: Postgres JSONB keeps a number's decimal value, not its Python type (1e16 reads back as
    the integer 10000000000000000), so numbers compare as the doubles a JSON reader makes of them."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


OTLP_TYPES = st.sampled_from(["application/x-protobuf", "application/json", "application/protobuf"])


@PROPERTY
@given(body=st.binary(max_size=2048), content_type=OTLP_TYPES, gzipped=st.booleans())
def test_any_bytes_on_the_otlp_route_get_an_answer_below_500(
    app_client: TestClient, key: CreatedKey, body: bytes, content_type: str, gzipped: bool
) -> None:
    headers = {"Authorization": f"Bearer {key.key}", "Content-Type": content_type}
    if gzipped:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    r = app_client.post("/v1/traces", content=body, headers=headers)
    assert r.status_code in (200, 400, 413, 415), (r.status_code, r.text[:300])


@PROPERTY
@given(prompt=st.text(max_size=400).filter(lambda t: not any("\ud800" <= c <= "\udfff" for c in t)),
       answer=st.text(max_size=400).filter(lambda t: not any("\ud800" <= c <= "\udfff" for c in t)))
def test_genai_span_text_arrives_unchanged_or_is_reported(
    app_client: TestClient, session: Session, key: CreatedKey, prompt: str, answer: str
) -> None:
    span_id = bytes.fromhex(new_id()[:16])
    span = make_span("chat", {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m",
                              "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": prompt,
                              "gen_ai.completion.0.content": answer}, span_id=span_id)
    r = app_client.post("/v1/traces", content=make_request(span).SerializeToString(),
                        headers={"Authorization": f"Bearer {key.key}", "Content-Type": "application/x-protobuf"})
    assert r.status_code == 200
    reply = ExportTraceServiceResponse.FromString(r.content)
    row = _event(session, key, otel_event_id(TRACE_ID, span_id))
    if "\x00" in prompt + answer:
        assert reply.partial_success.rejected_spans == 1 and "NUL" in reply.partial_success.error_message
        assert row is None
    else:
        assert reply.partial_success.rejected_spans == 0, reply.partial_success.error_message
        assert row is not None and (row.prompt, row.response) == (prompt, answer)


# Issue #18, finding 6: the input classes that used to answer 500. Each gets a definite answer below 500, and a
# 422 is valid JSON (UTF-8, whatever the key held) naming a field of the batch.
def _post_raw(app_client: TestClient, key: CreatedKey, body: str) -> Any:
    return app_client.post("/v1/events", content=body.encode("utf-8"), headers={
        "Authorization": f"Bearer {key.key}", "Content-Type": "application/json"})


def _raw_event(event_id: str, extra: str) -> str:
    return '{"events": [{"event_id": "' + event_id + '", "prompt": "p", "response": "r", ' + extra + "}]}"


@PROPERTY
@given(ts=HOSTILE_DATETIME)
def test_any_timestamp_is_stored_in_utc_or_refused_naming_it(
    app_client: TestClient, session: Session, key: CreatedKey, ts: str
) -> None:
    event_id = new_id()
    r = _post_raw(app_client, key, _raw_event(event_id, f'"timestamp": "{ts}"'))
    try:
        expected: datetime | None = to_utc(datetime.fromisoformat(ts))
    except TimeRangeError:
        expected = None
    if expected is None:
        assert r.status_code == 422, (ts, r.status_code, r.text[:300])
        assert [d["field"] for d in r.json()["detail"]] == ["events[0].timestamp"]
        assert _event(session, key, event_id) is None
    else:
        assert r.status_code == 200, (ts, r.text[:300])
        row = _event(session, key, event_id)
        assert row is not None and row.ts == expected


@PROPERTY
@given(metadata=st.one_of(
    DEEP_JSON,
    st.builds(lambda k: "{" + k + ": 1}", LONE_SURROGATE_KEY),
    st.builds(lambda n: '{"a": {"b": [0, ' + n + "]}}", UNSTORABLE_NUMBER),
))
def test_hostile_metadata_gets_a_definite_answer_below_500(
    app_client: TestClient, session: Session, key: CreatedKey, metadata: str
) -> None:
    event_id = new_id()
    r = _post_raw(app_client, key, _raw_event(event_id, f'"metadata": {metadata}'))
    assert r.status_code in (200, 422), (r.status_code, r.text[:300])
    must_refuse = ("\\ud" in metadata or metadata.count("{") > 200 or "Infinity" in metadata or "NaN" in metadata
                   or '[0, ' in metadata)
    if must_refuse:
        assert r.status_code == 422, (metadata[:200], r.text[:300])
    if r.status_code == 422:
        detail = json.loads(r.content.decode("utf-8"))["detail"]
        assert detail and all(d["field"].startswith(("events", "body")) for d in detail), detail
        assert _event(session, key, event_id) is None


@PROPERTY
@given(row_id=HUGE_PATH_INT)
def test_path_ids_past_64_bits_are_refused_not_500(app_client: TestClient, key: CreatedKey, row_id: str) -> None:
    auth = {"Authorization": f"Bearer {key.key}"}
    assert app_client.get(f"/v1/retrain/jobs/{row_id}", headers=auth).status_code == 422
    assert app_client.post(f"/v1/webhook-deliveries/{row_id}/redeliver", headers=auth).status_code == 422


# Every other way a time comes in (GET filters typed as text, a silence's end, a pinned reference range): the
# same class of input, the same answer. Out of range (after the offset) is a 422 naming the parameter; in range
# is never a 5xx.
TIME_INPUTS = ["events.start", "events.end", "events.window", "events.cluster_window", "metrics.start",
               "silence.until", "reference.start"]


@PROPERTY
@given(ts=HOSTILE_DATETIME, where=st.sampled_from(TIME_INPUTS))
def test_every_time_parameter_refuses_out_of_range_times_by_name(
    app_client: TestClient, key: CreatedKey, ts: str, where: str
) -> None:
    auth = {"Authorization": f"Bearer {key.key}"}
    kind, name = where.split(".")
    if kind in ("events", "metrics"):
        r = app_client.get(f"/v1/{kind}", params={name: ts}, headers=auth)
        field = name if kind == "events" else f"query.{name}"
    elif kind == "silence":
        r = app_client.post("/v1/alert-silences", json={"segment": "tier=gold", "until": ts}, headers=auth)
        field = "until"
    else:
        ref = {"kind": "range", "start": ts, "end": "9998-01-01T00:00:00Z"}
        r = app_client.patch("/v1/project/config", json={"reference": ref}, headers=auth, params={"dry_run": "true"})
        field = "reference.start"
    assert r.status_code < 500, (where, ts, r.text[:300])
    try:
        to_utc(datetime.fromisoformat(ts))
    except TimeRangeError:
        assert r.status_code == 422, (where, ts, r.text[:300])
        fields = [d["field"] for d in r.json()["detail"]]
        assert any(f.startswith(field) for f in fields), (where, ts, fields)
