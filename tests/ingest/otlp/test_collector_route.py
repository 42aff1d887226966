"""The real OpenTelemetry exporter sends to a running collector: GenAI spans are stored as events (every
message convention), a re-sent export stores nothing twice, malformed bodies get a clear 400 and change
nothing, and feedback attaches to an OTel event by its id."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from monitor.ingest.otlp import otel_event_id
from monitor.models import Event, Feedback
from monitor.projects.service import create_key, get_project
from tests.ingest.otlp.spans import write_sample_trace
from tests.support.collector import CollectorProcess
from tests.support.factories import unique_slug

pytestmark = [pytest.mark.postgres]


@pytest.fixture(scope="module")
def collector(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    proc = CollectorProcess(pg_url, tmp_path_factory.mktemp("collector") / "collector.log")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def key(pg_engine: Engine):  # type: ignore[no-untyped-def]
    with Session(pg_engine) as s:
        created = create_key(s, unique_slug("otel"))
        s.commit()
    return created


def _export(collector: CollectorProcess, key: str, compression: Compression):  # type: ignore[no-untyped-def]
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
    exporter = OTLPSpanExporter(endpoint=f"{collector.url}/v1/traces", compression=compression,
                                headers={"Authorization": f"Bearer {key}"})
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    contexts = write_sample_trace(provider.get_tracer("tests"))
    provider.shutdown()
    return contexts


def _events(engine: Engine, slug: str) -> list[Event]:
    with Session(engine) as s:
        pid = get_project(s, slug).id
        return list(s.scalars(select(Event).where(Event.project_id == pid).order_by(Event.ts)))


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_exporter_spans_become_events(collector: CollectorProcess, pg_engine: Engine, key, compression) -> None:  # type: ignore[no-untyped-def]
    contexts = _export(collector, key.key, compression)
    events = _events(pg_engine, key.project_slug)
    by_id = {e.client_event_id: e for e in events}
    chat = by_id[otel_event_id(contexts["chat gpt-4o-mini"].trace_id, contexts["chat gpt-4o-mini"].span_id)]
    assert chat.model == "gpt-4o-mini-2024-07-18" and chat.response == "Tomorrow before noon."
    assert chat.prompt_tokens == 42 and chat.completion_tokens == 7 and chat.latency_ms == pytest.approx(1250)
    assert chat.trace_id == format(contexts["chat gpt-4o-mini"].trace_id, "032x")
    indexed = by_id[otel_event_id(contexts["openai.chat"].trace_id, contexts["openai.chat"].span_id)]
    assert indexed.prompt == "Name a prime number." and indexed.response == "7"
    assert {e.prompt for e in events} >= {"Hello there"}  # the span-event convention
    assert all(e.model != "GET /orders/1234" for e in events)  # the HTTP span is not an LLM call



def test_resent_export_is_stored_once(collector: CollectorProcess, pg_engine: Engine, key) -> None:  # type: ignore[no-untyped-def]
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=f"{collector.url}/v1/traces", headers={"Authorization": f"Bearer {key.key}"})))
    write_sample_trace(provider.get_tracer("tests"))
    provider.shutdown()
    stored = len(_events(pg_engine, key.project_slug))
    assert stored >= 3
    # The exporter's own encoder produces the bytes it sent; replay them as a retrying exporter would.
    body = encode_spans(memory.get_finished_spans()).SerializeToString()
    for _ in range(2):
        r = httpx.post(f"{collector.url}/v1/traces", content=gzip.compress(body),
                       headers={"Authorization": f"Bearer {key.key}", "Content-Type": "application/x-protobuf",
                                "Content-Encoding": "gzip"})
        assert r.status_code == 200
    assert len(_events(pg_engine, key.project_slug)) == stored


@pytest.mark.parametrize(
    ("body", "ctype", "status"),
    [(b"\x0a\xff\xff garbage", "application/x-protobuf", 400), (b'{"resourceSpans": [', "application/json", 400),
     (b"hello", "text/plain", 415)],
)
def test_malformed_export_is_refused_and_stores_nothing(  # type: ignore[no-untyped-def]
    collector: CollectorProcess, pg_engine: Engine, key, body: bytes, ctype: str, status: int
) -> None:
    r = httpx.post(f"{collector.url}/v1/traces", content=body,
                   headers={"Authorization": f"Bearer {key.key}", "Content-Type": ctype})
    assert r.status_code == status
    assert r.content  # a google.rpc.Status with a message
    assert _events(pg_engine, key.project_slug) == []
    assert httpx.post(f"{collector.url}/v1/traces", content=b"", headers={"Content-Type": ctype}).status_code == 401


def test_feedback_attaches_to_an_otel_event(collector: CollectorProcess, pg_engine: Engine, key) -> None:  # type: ignore[no-untyped-def]
    contexts = _export(collector, key.key, Compression.NoCompression)
    ctx = contexts["chat gpt-4o-mini"]
    event_id = otel_event_id(ctx.trace_id, ctx.span_id)
    r = httpx.post(f"{collector.url}/v1/feedback", headers={"Authorization": f"Bearer {key.key}"},
                   json={"feedback": [{"feedback_id": "fb-otel-1", "event_id": event_id, "score": 0.0}]})
    assert r.json() == {"accepted": 1, "duplicates": 0}
    with Session(pg_engine) as s:
        joined = s.scalar(select(func.count()).select_from(Feedback).join(
            Event, (Event.client_event_id == Feedback.event_client_id) & (Event.project_id == Feedback.project_id)
        ).where(Feedback.client_feedback_id == "fb-otel-1"))
    assert joined == 1
