"""OTLP/HTTP response bodies: partial success and error Status, in the request's encoding."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format
from google.rpc import status_pb2  # the real google.rpc.Status, to check wire compatibility
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from monitor.ingest.otlp import (
    JSON,
    PROTOBUF,
    error_response,
    export_response,
    export_response_for,
    response_media_type,
    spans_to_events,
)
from monitor.schemas import Limits
from tests.ingest.otlp.build import make_request, make_span


def test_full_success_is_an_empty_response() -> None:
    body, content_type = export_response(request_content_type=PROTOBUF)
    assert content_type == PROTOBUF
    response = ExportTraceServiceResponse.FromString(body)
    assert not response.HasField("partial_success")
    json_body, json_type = export_response(request_content_type="application/json; charset=utf-8")
    assert (json.loads(json_body), json_type) == ({}, JSON)


def test_partial_success_reports_rejected_spans_in_protobuf() -> None:
    too_long = make_span(
        attrs={"gen_ai.request.model": "m", "input.value": "x" * 11}, span_id=b"\x00" * 7 + b"\x05"
    )
    result = spans_to_events(make_request(too_long, make_span("GET /", {})), limits=Limits(max_text_chars=10))
    body, content_type = export_response_for(result, PROTOBUF)
    response = ExportTraceServiceResponse.FromString(body)
    assert content_type == PROTOBUF
    assert response.partial_success.rejected_spans == 1  # the ignored HTTP span is not a rejection
    assert response.partial_success.error_message.startswith(
        "1 LLM span(s) rejected: span 0000000000000005: prompt"
    )


def test_partial_success_in_json_round_trips() -> None:
    body, content_type = export_response(
        rejected_spans=3, error_message="3 spans too long", request_content_type=JSON
    )
    assert content_type == JSON
    document = json.loads(body)
    assert document["partialSuccess"]["errorMessage"] == "3 spans too long"
    assert int(document["partialSuccess"]["rejectedSpans"]) == 3  # int64: proto3 JSON writes a string
    parsed = json_format.Parse(body, ExportTraceServiceResponse())
    assert parsed.partial_success.rejected_spans == 3


@pytest.mark.parametrize(
    ("http_status", "grpc_code"), [(400, 3), (401, 16), (413, 3), (415, 3), (503, 14), (418, 2)]
)
def test_error_status_is_a_google_rpc_status(http_status: int, grpc_code: int) -> None:
    body, content_type = error_response(
        "body is not valid JSON", http_status=http_status, request_content_type=PROTOBUF
    )
    assert content_type == PROTOBUF
    status = status_pb2.Status.FromString(body)
    assert (status.code, status.message) == (grpc_code, "body is not valid JSON")


def test_error_status_in_json() -> None:
    body, content_type = error_response("nope", http_status=400, request_content_type=JSON)
    assert content_type == JSON
    assert json.loads(body) == {"code": 3, "message": "nope"}
    assert json_format.Parse(body, status_pb2.Status()).message == "nope"


@pytest.mark.parametrize(
    ("request_type", "expected"),
    [
        (JSON, JSON),
        ("application/json;charset=UTF-8", JSON),
        (PROTOBUF, PROTOBUF),
        ("text/plain", PROTOBUF),
        (None, PROTOBUF),
    ],
)
def test_response_encoding_follows_the_request(request_type: str | None, expected: str) -> None:
    assert response_media_type(request_type) == expected
