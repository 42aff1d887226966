"""Bodies produced by the real OpenTelemetry SDK + OTLP/HTTP exporter, decoded and mapped end to end."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression

from monitor.ingest.otlp import decode_export_request, otel_event_id, spans_to_events
from monitor.ingest.otlp.genai import MappingResult
from monitor.schemas import EventIn
from tests.ingest.otlp.conftest import CapturedRequest, OtlpSink
from tests.ingest.otlp.spans import EXPECTED, RESOURCE, START_OFFSETS_MS, T0_DATETIME, write_sample_trace

MAX_BYTES = 4 * 1024 * 1024


def _map(captured: CapturedRequest) -> MappingResult:
    request = decode_export_request(
        captured.body,
        captured.headers.get("content-type"),
        captured.headers.get("content-encoding"),
        max_bytes=MAX_BYTES,
    )
    return spans_to_events(request)


def _by_span_name(result: MappingResult) -> dict[str, dict[str, Any]]:
    return {event["metadata"]["otel.span.name"]: event for event in result.events}


def test_exporter_request_shape(otlp_sink: OtlpSink) -> None:
    captured = otlp_sink.export(write_sample_trace, resource=RESOURCE)
    assert captured.path == "/v1/traces"
    assert captured.headers["content-type"] == "application/x-protobuf"
    assert "content-encoding" not in captured.headers


def test_every_convention_maps_to_the_expected_event(otlp_sink: OtlpSink) -> None:
    contexts: dict[str, Any] = {}
    captured = otlp_sink.export(lambda tracer: contexts.update(write_sample_trace(tracer)), resource=RESOURCE)
    result = _map(captured)

    assert result.rejected == []
    assert result.ignored_spans == 2  # the HTTP server span and the embeddings call
    events = _by_span_name(result)
    assert set(events) == set(EXPECTED)
    trace_hex = f"{contexts['GET /orders/1234'].trace_id:032x}"
    for name, expected in EXPECTED.items():
        event = events[name]
        context = contexts[name]
        assert event["event_id"] == otel_event_id(context.trace_id, context.span_id)
        assert event["event_id"] == f"otel:{trace_hex}:{context.span_id:016x}"
        assert event["trace_id"] == trace_hex
        assert event["timestamp"] == T0_DATETIME + timedelta(milliseconds=START_OFFSETS_MS[name])
        for key, value in expected.items():
            assert event[key] == value, f"{name}: {key}"
        # Nothing the span did not say is invented.
        assert set(event) - {"event_id", "trace_id", "timestamp", "metadata"} == set(expected), name
        EventIn.model_validate(event)


def test_metadata_carries_resource_and_span_context(otlp_sink: OtlpSink) -> None:
    captured = otlp_sink.export(write_sample_trace, resource=RESOURCE)
    events = _by_span_name(_map(captured))
    metadata = events["chat gpt-4o-mini"]["metadata"]
    assert metadata["service.name"] == "checkout-bot"
    assert metadata["service.version"] == "2.4.1"
    assert metadata["gen_ai.provider.name"] == "openai"
    assert metadata["gen_ai.operation.name"] == "chat"
    assert metadata["gen_ai.request.temperature"] == pytest.approx(0.2)
    assert metadata["gen_ai.response.finish_reasons"] == ["stop"]
    assert metadata["otel.scope.name"] == "tests.ingest.otlp"
    assert metadata["tenant"] == "acme"  # driftloop.metadata.tenant
    # gen_ai.system (older name) is reported under the current one.
    assert events["openai.chat"]["metadata"]["gen_ai.provider.name"] == "openai"


def test_gzip_export_decodes_to_the_same_events(otlp_sink: OtlpSink) -> None:
    plain = otlp_sink.export(write_sample_trace, resource=RESOURCE)
    gzipped = otlp_sink.export(write_sample_trace, resource=RESOURCE, compression=Compression.Gzip)
    assert gzipped.headers["content-encoding"] == "gzip"
    assert gzipped.body[:2] == b"\x1f\x8b"

    def without_ids(result: MappingResult) -> list[dict[str, Any]]:
        events = [{k: v for k, v in e.items() if k not in ("event_id", "trace_id")} for e in result.events]
        return sorted(events, key=lambda e: e["timestamp"])

    gz_result = _map(gzipped)
    assert len(gz_result.events) == len(EXPECTED)
    assert without_ids(gz_result) == without_ids(_map(plain))


def test_deflate_export_decodes(otlp_sink: OtlpSink) -> None:
    captured = otlp_sink.export(write_sample_trace, resource=RESOURCE, compression=Compression.Deflate)
    assert captured.headers["content-encoding"] == "deflate"
    assert len(_map(captured).events) == len(EXPECTED)


def test_api_key_from_env_arrives_in_the_authorization_header(
    otlp_sink: OtlpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The documented way to give an exporter driftloop's key: the value is URL-encoded (%20 = space).
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20dl_test_key")
    captured = otlp_sink.export(write_sample_trace, resource=RESOURCE)
    assert captured.headers["authorization"] == "Bearer dl_test_key"


def test_resent_export_maps_to_the_same_event_ids(otlp_sink: OtlpSink) -> None:
    captured = otlp_sink.export(write_sample_trace, resource=RESOURCE)
    first, second = _map(captured), _map(captured)
    assert [e["event_id"] for e in first.events] == [e["event_id"] for e in second.events]
    assert len({e["event_id"] for e in first.events}) == len(EXPECTED)
