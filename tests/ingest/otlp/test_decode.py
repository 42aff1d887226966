"""decode_export_request: protobuf and OTLP/JSON, compression, and every way a body can be wrong."""

from __future__ import annotations

import gzip
import json
import tracemalloc
import zlib
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from monitor.ingest.otlp import (
    OtlpDecodeError,
    PayloadTooLarge,
    UnsupportedMediaType,
    decode_export_request,
    spans_to_events,
)
from monitor.schemas import EventIn
from tests.ingest.otlp.conftest import OtlpSink
from tests.ingest.otlp.otlp_json import HAND_WRITTEN, to_otlp_json, to_proto3_json
from tests.ingest.otlp.spans import RESOURCE, write_sample_trace

PB = "application/x-protobuf"
JS = "application/json"
LIMIT = 1024 * 1024


def decode(body: bytes, content_type: str | None = PB, encoding: str | None = None, limit: int = LIMIT):
    return decode_export_request(body, content_type, encoding, max_bytes=limit)


@pytest.fixture
def real_request(otlp_sink: OtlpSink) -> ExportTraceServiceRequest:
    """An ExportTraceServiceRequest exactly as the real exporter serialized it."""
    return decode(otlp_sink.export(write_sample_trace, resource=RESOURCE).body)


# --- OTLP/JSON -------------------------------------------------------------------------------------


def test_otlp_json_of_a_real_export_decodes_to_the_same_message(
    real_request: ExportTraceServiceRequest,
) -> None:
    body = to_otlp_json(real_request)
    span = real_request.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id.hex().encode() in body  # the fixture really uses hex ids
    assert decode(body, JS) == real_request


def test_hand_written_otlp_json_maps_to_an_event() -> None:
    request = decode(HAND_WRITTEN.encode(), "application/json; charset=utf-8")
    spans = request.resource_spans[0].scope_spans[0].spans
    assert spans[0].trace_id == bytes.fromhex("5b8efff798038103d269b633813fc60c")
    assert spans[0].parent_span_id == bytes.fromhex("eee19b7ec3c1b173")
    assert spans[1].parent_span_id == b""
    assert spans[1].links[0].span_id == bytes.fromhex("0123456789abcdef")

    result = spans_to_events(request)
    assert result.ignored_spans == 1 and result.rejected == []
    (event,) = result.events
    assert event["event_id"] == "otel:5b8efff798038103d269b633813fc60c:eee19b7ec3c1b174"
    assert event["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert event["timestamp"] == datetime(2018, 12, 13, 14, 51, 0, tzinfo=UTC)
    assert event["latency_ms"] == 1500.0
    assert event["prompt"] == "Find me a flight to Lisbon"  # structured (kvlist) messages
    assert event["response"] == "TAP 1234 at 9:05"  # JSON-string messages
    assert (event["prompt_tokens"], event["completion_tokens"]) == (31, 12)
    assert event["session_id"] == "trip-77"
    assert event["model_version"] == "2025-06-01"
    assert event["error"] == "upstream timeout"
    EventIn.model_validate(event)


def test_original_snake_case_field_names_are_accepted() -> None:
    document = json.loads(HAND_WRITTEN)
    snake = (
        json.dumps(document)
        .replace('"resourceSpans"', '"resource_spans"')
        .replace('"scopeSpans"', '"scope_spans"')
    )
    snake = snake.replace('"traceId"', '"trace_id"').replace('"spanId"', '"span_id"')
    snake = snake.replace('"parentSpanId"', '"parent_span_id"').replace(
        '"startTimeUnixNano"', '"start_time_unix_nano"'
    )
    assert decode(snake.encode(), JS) == decode(HAND_WRITTEN.encode(), JS)


def test_proto3_json_with_base64_ids_is_tolerated(real_request: ExportTraceServiceRequest) -> None:
    assert decode(to_proto3_json(real_request), JS) == real_request


def test_gzipped_json(real_request: ExportTraceServiceRequest) -> None:
    assert decode(gzip.compress(to_otlp_json(real_request)), JS, "gzip") == real_request


def test_protobuf_content_type_synonym_and_case(real_request: ExportTraceServiceRequest) -> None:
    body = real_request.SerializeToString()
    assert decode(body, "application/protobuf") == real_request
    assert decode(body, "Application/X-Protobuf") == real_request


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"resourceSpans": [', "not valid JSON"),
        (b"[1, 2]", "must be an object"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"", "not valid JSON"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}',
            "startTimeUnixNano",
        ),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]}', "spans[0].traceId"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "0123456789abcd"}]}]}]}', "span id"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 12}]}]}]}', "must be a string"),
        (b'{"resourceSpans": {"not": "a list"}}', "resourceSpans"),
        (b"[" * 100_000 + b"]" * 100_000, "nested"),
        (b'{"a":' * 150 + b"1" + b"}" * 150, "nested"),
    ],
)
def test_malformed_json_is_refused_with_a_useful_message(body: bytes, fragment: str) -> None:
    with pytest.raises(OtlpDecodeError) as caught:
        decode(body, JS)
    assert fragment in str(caught.value)
    assert caught.value.http_status == 400


# --- protobuf -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"\x0a\xff\xff\xff\xff\x0f",  # field 1, length far past the end
        b"\x0a\x05abc",  # truncated length-delimited field
        b"\xff\xff\xff\xff",  # invalid tag/varint
        b"\x0a\x02\x12\x00\x07",  # wire type 7 does not exist
    ],
)
def test_bad_protobuf_is_refused(body: bytes) -> None:
    with pytest.raises(OtlpDecodeError, match="not a valid protobuf ExportTraceServiceRequest"):
        decode(body, PB)


def test_empty_protobuf_body_is_an_empty_export() -> None:
    assert decode(b"", PB) == ExportTraceServiceRequest()


# --- content type and encoding --------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", None, "", "application/grpc", "multipart/form-data"])
def test_wrong_content_type_is_415_and_names_the_supported_types(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        decode(b"{}", content_type)
    assert caught.value.http_status == 415
    assert "application/x-protobuf" in str(caught.value) and "application/json" in str(caught.value)


def test_unknown_content_encoding_is_415() -> None:
    with pytest.raises(UnsupportedMediaType, match="Content-Encoding 'br'"):
        decode(b"x", PB, "br")


def test_identity_encoding_is_accepted(real_request: ExportTraceServiceRequest) -> None:
    assert decode(real_request.SerializeToString(), PB, "identity") == real_request


def test_multi_member_gzip(real_request: ExportTraceServiceRequest) -> None:
    body = real_request.SerializeToString()
    half = len(body) // 2
    assert decode(gzip.compress(body[:half]) + gzip.compress(body[half:]), PB, "gzip") == real_request


def test_raw_deflate_is_accepted_as_deflate(real_request: ExportTraceServiceRequest) -> None:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw = compressor.compress(real_request.SerializeToString()) + compressor.flush()
    assert decode(raw, PB, "deflate") == real_request


@pytest.mark.parametrize(
    ("body", "encoding", "fragment"),
    [
        (b"plain, not gzip", "gzip", "not valid gzip data"),
        (gzip.compress(b"\x0a\x00" * 100)[:-12], "gzip", "truncated"),
        (gzip.compress(b"") + b"junk", "gzip", "not valid gzip data"),
        (b"", "gzip", "truncated"),
        (zlib.compress(b"\x0a\x00") + b"junk", "deflate", "unexpected bytes"),
        (b"\x00not deflate at all", "deflate", "not valid deflate data"),
    ],
)
def test_broken_compression_is_refused(body: bytes, encoding: str, fragment: str) -> None:
    with pytest.raises(OtlpDecodeError, match=fragment):
        decode(body, PB, encoding)


def _bomb(decompressed_mib: int, wbits: int) -> bytes:
    """`decompressed_mib` MiB of zeros, compressed (about 1000:1), built without holding them whole."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    chunk = bytes(1024 * 1024)
    return b"".join(compressor.compress(chunk) for _ in range(decompressed_mib)) + compressor.flush()


@pytest.mark.parametrize(("encoding", "wbits"), [("gzip", 16 + zlib.MAX_WBITS), ("deflate", zlib.MAX_WBITS)])
def test_compression_bomb_is_stopped_at_the_limit_without_inflating_it(encoding: str, wbits: int) -> None:
    bomb = _bomb(64, wbits)  # 64 MiB once inflated: 64 times the limit
    assert len(bomb) < LIMIT  # small enough to pass the raw-size check
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLarge) as caught:
            decode(bomb, PB, encoding, limit=LIMIT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.http_status == 413
    assert f"more than {LIMIT} bytes" in str(caught.value)
    # Output is capped at limit + 1 bytes; allow a few copies of that, far below the 64 MiB payload.
    assert peak < 8 * LIMIT, f"peak allocation {peak} bytes while refusing a bomb"


def test_body_over_the_limit_is_refused_before_parsing() -> None:
    with pytest.raises(PayloadTooLarge, match="is 2049 bytes; the limit is 2048"):
        decode(b"\x00" * 2049, PB, limit=2048)


def test_decompressed_body_exactly_at_the_limit_is_accepted(real_request: ExportTraceServiceRequest) -> None:
    body = real_request.SerializeToString()
    assert decode(gzip.compress(body), PB, "gzip", limit=len(body)) == real_request
    with pytest.raises(PayloadTooLarge):
        decode(gzip.compress(body), PB, "gzip", limit=len(body) - 1)


# --- properties -----------------------------------------------------------------------------------

FORMATS = st.sampled_from([(PB, None), (PB, "gzip"), (PB, "deflate"), (JS, None), (JS, "gzip")])


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=512), fmt=FORMATS)
def test_random_bytes_raise_nothing_but_otlp_decode_error(body: bytes, fmt: tuple[str, str | None]) -> None:
    try:
        request = decode(body, *fmt)
    except OtlpDecodeError:
        return
    # Whatever parsed must also map without raising.
    spans_to_events(request)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=30,
)
OTLP_KEYS = st.sampled_from(
    [
        "resourceSpans",
        "scopeSpans",
        "spans",
        "traceId",
        "spanId",
        "attributes",
        "key",
        "value",
        "stringValue",
        "intValue",
        "arrayValue",
        "values",
        "kvlistValue",
        "events",
        "status",
        "code",
        "startTimeUnixNano",
        "name",
    ]
)
OTLP_SHAPED = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=40)
    | st.just("5b8efff798038103d269b633813fc60c"),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(OTLP_KEYS, children, max_size=4),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=st.one_of(JSON_VALUES, OTLP_SHAPED))
def test_random_json_raises_nothing_but_otlp_decode_error(document: object) -> None:
    try:
        request = decode(json.dumps(document).encode(), JS)
    except OtlpDecodeError:
        return
    for event in spans_to_events(request).events:
        EventIn.model_validate(event)
