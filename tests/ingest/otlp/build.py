"""Small builders for OTLP protobuf messages, so mapping tests can state spans compactly."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

T0 = 1_750_000_000_000_000_000
MS = 1_000_000
TRACE_ID = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
_span_ids = itertools.count(1)


def any_value(value: Any) -> AnyValue:
    out = AnyValue()
    if isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, bytes):
        out.bytes_value = value
    elif isinstance(value, list):
        out.array_value.values.extend(any_value(item) for item in value)
    elif isinstance(value, dict):
        out.kvlist_value.values.extend(key_values(value))
    elif value is not None:
        raise TypeError(f"cannot encode {value!r}")
    return out


def key_values(attrs: Mapping[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=any_value(value)) for key, value in attrs.items()]


def make_span(
    name: str = "chat",
    attrs: Mapping[str, Any] | None = None,
    *,
    events: Iterable[tuple[str, Mapping[str, Any]]] = (),
    status: tuple[int, str] | None = None,
    trace_id: bytes = TRACE_ID,
    span_id: bytes | None = None,
    start: int = T0,
    end: int = T0 + 250 * MS,
) -> Span:
    span = Span(
        trace_id=trace_id,
        span_id=span_id if span_id is not None else next(_span_ids).to_bytes(8, "big"),
        name=name,
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        attributes=key_values(attrs or {}),
    )
    for event_name, event_attrs in events:
        span.events.add(name=event_name, time_unix_nano=start, attributes=key_values(event_attrs))
    if status is not None:
        span.status.CopyFrom(Status(code=status[0], message=status[1]))  # type: ignore[arg-type]
    return span


def make_request(
    *spans: Span, resource: Mapping[str, Any] | None = None, scope: str = "tests"
) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(key_values(resource or {"service.name": "unit"}))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = scope
    scope_spans.spans.extend(spans)
    return request
