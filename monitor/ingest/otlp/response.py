"""OTLP/HTTP response bodies, encoded the way the request was (protobuf or JSON).

- 200: an `ExportTraceServiceResponse`. On full success `partial_success` stays unset (the spec's
  "empty" response); when LLM spans were rejected it carries `rejected_spans` and a human
  `error_message`, and exporters log it without retrying (the rejection is not transient).
- 4xx/5xx: a `google.rpc.Status` with a code and message, as OTLP/HTTP requires. The two fields we send
  are defined here on a private descriptor pool, so the collector needs no googleapis package and cannot
  clash with one that is installed.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from monitor.ingest.otlp.decode import JSON, PROTOBUF, media_type
from monitor.ingest.otlp.genai import MappingResult

# google.rpc.Code values for the HTTP statuses the collector answers with.
_GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 413: 3, 415: 3, 429: 8, 500: 13, 503: 14}
_UNKNOWN = 2


def response_media_type(request_content_type: str | None) -> str:
    """JSON requests get JSON answers; everything else (including unsupported types) gets protobuf."""
    return JSON if media_type(request_content_type) == JSON else PROTOBUF


def export_response(
    *, rejected_spans: int = 0, error_message: str = "", request_content_type: str | None
) -> tuple[bytes, str]:
    """(body, Content-Type) of a 200 answer to a trace export."""
    response = ExportTraceServiceResponse()
    if rejected_spans or error_message:
        response.partial_success.rejected_spans = rejected_spans
        response.partial_success.error_message = error_message
    return _encode(response, response_media_type(request_content_type))


def export_response_for(result: MappingResult, request_content_type: str | None) -> tuple[bytes, str]:
    """The 200 answer for a mapped request: rejected LLM spans are reported as partial success."""
    return export_response(
        rejected_spans=result.rejected_spans,
        error_message=result.error_message(),
        request_content_type=request_content_type,
    )


def error_response(message: str, *, http_status: int, request_content_type: str | None) -> tuple[bytes, str]:
    """(body, Content-Type) of a 4xx/5xx answer: a google.rpc.Status with `message`."""
    status = _status_class()(code=_GRPC_CODES.get(http_status, _UNKNOWN), message=message)
    return _encode(status, response_media_type(request_content_type))


def _encode(message: Any, kind: str) -> tuple[bytes, str]:
    if kind == JSON:
        document = json_format.MessageToDict(message)
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), JSON
    return message.SerializeToString(), PROTOBUF


@lru_cache(maxsize=1)
def _status_class() -> Any:
    """google.rpc.Status {int32 code = 1; string message = 2;} (its `details` field is never sent)."""
    optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    file_proto = descriptor_pb2.FileDescriptorProto(
        name="driftloop/otlp/google_rpc_status.proto", package="google.rpc", syntax="proto3"
    )
    status = file_proto.message_type.add(name="Status")
    status.field.add(
        name="code",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
        label=optional,
        json_name="code",
    )
    status.field.add(
        name="message",
        number=2,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=optional,
        json_name="message",
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.Status"))
