"""OTLP/HTTP trace ingestion: decode export bodies, map GenAI spans to events, build OTLP responses.

Pure code: bytes and protobuf messages in, event dicts and response bytes out. The FastAPI route owns
HTTP, auth and the database write.
"""

from monitor.ingest.otlp.decode import (
    JSON,
    PROTOBUF,
    OtlpDecodeError,
    PayloadTooLarge,
    UnsupportedMediaType,
    decode_export_request,
)
from monitor.ingest.otlp.genai import MappingResult, is_llm_span, otel_event_id, spans_to_events
from monitor.ingest.otlp.response import error_response, export_response, export_response_for, response_media_type

__all__ = [
    "JSON",
    "PROTOBUF",
    "MappingResult",
    "OtlpDecodeError",
    "PayloadTooLarge",
    "UnsupportedMediaType",
    "decode_export_request",
    "error_response",
    "export_response",
    "export_response_for",
    "is_llm_span",
    "otel_event_id",
    "response_media_type",
    "spans_to_events",
]
