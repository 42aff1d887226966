"""Map the LLM spans of an OTLP trace export to driftloop events (the `EventIn` contract).

A span is an LLM call when it says so: a generation `gen_ai.operation.name` (chat, text_completion,
generate_content), an OpenInference `openinference.span.kind` of LLM, a Langfuse `generation`
observation, an MLflow `LLM`/`CHAT_MODEL` span, or (the brief's catch-all) any `gen_ai.request.model`,
`gen_ai.system` or `gen_ai.provider.name` attribute. Spans that explicitly are something else -
embeddings, tool calls, agent or workflow wrappers, retrieval, OpenInference CHAIN/TOOL/... - are ignored
even when they carry those attributes, so one user request is not counted once per wrapper layer.

Every event gets `event_id = "otel:<trace id hex>:<span id hex>"`, so a re-sent export maps to the same
ids and the store keeps one copy. Each event is validated against `EventIn` with the caller's limits:
a span whose text is too long (or otherwise unstorable) is rejected with a reason, never truncated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from pydantic import ValidationError

from monitor.encoding import json_safe
from monitor.ingest.otlp import conventions
from monitor.ingest.otlp.conventions import SpanEvent
from monitor.ingest.otlp.values import Attributes, as_text, attributes_dict, first
from monitor.schemas import EventIn, Limits

GENERATION_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "completion"})
NON_GENERATION_OPERATIONS = frozenset(
    {
        "embeddings",
        "embedding",
        "execute_tool",
        "create_agent",
        "invoke_agent",
        "invoke_workflow",
        "retrieval",
    }
)
_LLM_MARKERS = ("gen_ai.request.model", "gen_ai.system", "gen_ai.provider.name")
# OpenLLMetry marks its spans with llm.request.type; these kinds are not generations.
_NON_GENERATION_REQUEST_TYPES = frozenset({"embedding", "embeddings", "rerank"})
_MLFLOW_LLM_TYPES = frozenset({"LLM", "CHAT_MODEL"})

_MAX_LATENCY_MS = 86_400_000  # EventIn's bound: a "call" longer than a day is a clock problem, not a call
_MAX_ERROR_CHARS = 8192  # EventIn.error's bound
_SESSION_KEYS = ("driftloop.session_id", "gen_ai.conversation.id", "session.id", "langfuse.session.id")
_USER_KEYS = ("user.id", "enduser.id", "langfuse.user.id")
_SPAN_METADATA_KEYS = (
    "gen_ai.operation.name",
    "gen_ai.response.id",
    "gen_ai.response.finish_reasons",
    "gen_ai.request.temperature",
    "gen_ai.request.top_p",
    "gen_ai.request.max_tokens",
)
_RESOURCE_METADATA_KEYS = (
    "service.name",
    "service.version",
    "deployment.environment.name",
    "deployment.environment",
)


@dataclass(frozen=True)
class MappingResult:
    """What one export request turned into."""

    events: list[dict[str, Any]] = field(default_factory=list)
    ignored_spans: int = 0  # not LLM calls (HTTP, DB, embeddings, agent wrappers...): accepted, not stored
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (span id hex, reason) for LLM spans
    duplicate_spans: int = 0  # the same trace/span id twice in one request: stored once

    @property
    def rejected_spans(self) -> int:
        return len(self.rejected)

    def error_message(self, max_reasons: int = 5) -> str:
        """A short human summary of the rejections for OTLP's `partial_success.error_message`."""
        if not self.rejected:
            return ""
        shown = "; ".join(f"span {span_id}: {reason}" for span_id, reason in self.rejected[:max_reasons])
        more = len(self.rejected) - max_reasons
        suffix = f"; and {more} more" if more > 0 else ""
        return f"{len(self.rejected)} LLM span(s) rejected: {shown}{suffix}"


def otel_event_id(trace_id: bytes | int, span_id: bytes | int) -> str:
    """The driftloop event id of a span, e.g. to attach feedback from the app that made the call.

    Accepts raw id bytes (from OTLP) or the ints the OpenTelemetry API's `SpanContext` holds.
    """
    trace_hex = trace_id.hex() if isinstance(trace_id, bytes) else f"{trace_id:032x}"
    span_hex = span_id.hex() if isinstance(span_id, bytes) else f"{span_id:016x}"
    return f"otel:{trace_hex}:{span_hex}"


def is_llm_span(attrs: Attributes) -> bool:
    """True when the span records one model call (see the module docstring for the rules)."""
    operation = attrs.get("gen_ai.operation.name")
    if isinstance(operation, str):
        if operation.lower() in NON_GENERATION_OPERATIONS:
            return False
        if operation.lower() in GENERATION_OPERATIONS:
            return True
    request_type = attrs.get("llm.request.type")
    if isinstance(request_type, str) and request_type.lower() in _NON_GENERATION_REQUEST_TYPES:
        return False
    # Frameworks that type every span say explicitly which ones are model calls.
    openinference_kind = attrs.get("openinference.span.kind")
    if isinstance(openinference_kind, str):
        return openinference_kind.upper() == "LLM"
    langfuse_type = attrs.get("langfuse.observation.type")
    if isinstance(langfuse_type, str):
        return langfuse_type.lower() == "generation"
    mlflow_type = attrs.get("mlflow.spanType")
    if isinstance(mlflow_type, str):
        # MLflow stores the type JSON-encoded ('"CHAT_MODEL"'); accept it bare too.
        return mlflow_type.strip('"') in _MLFLOW_LLM_TYPES
    return any(key in attrs for key in _LLM_MARKERS)


class _Rejected(Exception):
    pass


def spans_to_events(request: ExportTraceServiceRequest, *, limits: Limits | None = None) -> MappingResult:
    """Map every LLM span of `request` to an event dict that `EventIn` accepts under `limits`."""
    limits = limits or Limits()
    events: list[dict[str, Any]] = []
    rejected: list[tuple[str, str]] = []
    ignored = duplicates = 0
    seen: set[str] = set()
    for resource_spans in request.resource_spans:
        resource_attrs = attributes_dict(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope_name = scope_spans.scope.name
            for span in scope_spans.spans:
                attrs = attributes_dict(span.attributes)
                if not is_llm_span(attrs):
                    ignored += 1
                    continue
                span_hex = span.span_id.hex() or "(empty)"
                try:
                    event = _span_to_event(span, attrs, resource_attrs, scope_name)
                except _Rejected as exc:
                    rejected.append((span_hex, str(exc)))
                    continue
                except Exception as exc:  # a mapping bug must cost one span, not the whole export
                    rejected.append((span_hex, f"internal error while mapping this span: {exc!r}"))
                    continue
                if event["event_id"] in seen:
                    duplicates += 1
                    continue
                problem = _validation_problem(event, limits)
                if problem is not None:
                    rejected.append((span_hex, problem))
                    continue
                seen.add(event["event_id"])
                events.append(event)
    return MappingResult(events=events, ignored_spans=ignored, rejected=rejected, duplicate_spans=duplicates)


def _span_to_event(
    span: Span, attrs: Attributes, resource_attrs: Attributes, scope_name: str
) -> dict[str, Any]:
    if len(span.trace_id) != 16 or not any(span.trace_id):
        raise _Rejected(f"invalid trace id {span.trace_id.hex()!r}: OTLP requires 16 bytes, not all zero")
    if len(span.span_id) != 8 or not any(span.span_id):
        raise _Rejected(f"invalid span id {span.span_id.hex()!r}: OTLP requires 8 bytes, not all zero")
    # driftloop.* and session keys may be set once on the resource (e.g. the served model version).
    merged: dict[str, Any] = {**resource_attrs, **attrs}
    events = [
        SpanEvent(name=event.name, attributes=attributes_dict(event.attributes)) for event in span.events
    ]
    metadata = _metadata(span, attrs, resource_attrs, merged, scope_name)
    prompt_tokens, completion_tokens = conventions.token_counts(attrs)
    event: dict[str, Any] = {
        "event_id": otel_event_id(span.trace_id, span.span_id),
        "trace_id": span.trace_id.hex(),
        "timestamp": _timestamp(span.start_time_unix_nano),
        "session_id": _session_id(merged, metadata),
        "model": conventions.model_name(attrs),
        "model_version": as_text(merged.get("driftloop.model_version")),
        "prompt_template_id": as_text(
            first(
                merged,
                "driftloop.prompt_template.id",
                "gen_ai.prompt.name",
                "langfuse.observation.prompt.name",
            )
        ),
        "prompt_template_version": as_text(
            first(
                merged,
                "driftloop.prompt_template.version",
                "langfuse.observation.prompt.version",
                "llm.prompt_template.version",
            )
        ),
        "prompt": conventions.prompt_text(attrs, events),
        "response": conventions.response_text(attrs, events),
        "latency_ms": _latency_ms(span, metadata),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "error": _error(span, attrs, events),
        "metadata": metadata or None,
    }
    return {key: value for key, value in event.items() if value is not None}


def _timestamp(unix_nano: int) -> datetime | None:
    if unix_nano <= 0:
        return None  # unknown start: the collector stamps the arrival time instead
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=unix_nano // 1000)


def _latency_ms(span: Span, metadata: dict[str, Any]) -> float | None:
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if start <= 0 or end <= 0:
        return None
    latency = (end - start) / 1e6
    if 0 <= latency <= _MAX_LATENCY_MS:
        return latency
    # Keep the call (its text is what drift monitoring needs) but say why the latency is missing.
    metadata["otel.invalid_latency_ms"] = latency
    return None


def _session_id(merged: Attributes, metadata: dict[str, Any]) -> str | None:
    raw = as_text(first(merged, *_SESSION_KEYS))
    if raw is None:
        return None
    if _is_client_id(raw):
        return raw
    # An id outside EventIn's id charset (spaces, '@', over 128 chars) is kept verbatim in metadata
    # rather than altered or allowed to fail the whole span.
    metadata["session.id"] = raw
    return None


def _is_client_id(value: str) -> bool:
    return 0 < len(value) <= 128 and all(ch.isascii() and (ch.isalnum() or ch in "._:-") for ch in value)


def _error(span: Span, attrs: Attributes, events: list[SpanEvent]) -> str | None:
    failed = span.status.code == Status.STATUS_CODE_ERROR
    langfuse_error = str(attrs.get("langfuse.observation.level", "")).upper() == "ERROR"
    error_type = as_text(attrs.get("error.type"))
    if not (failed or langfuse_error or error_type):
        return None
    exception = next((event.attributes for event in events if event.name == "exception"), None)
    exception_text = None
    if exception is not None:
        kind, message = as_text(exception.get("exception.type")), as_text(exception.get("exception.message"))
        exception_text = ": ".join(text for text in (kind, message) if text) or None
    text = (
        (span.status.message if failed else None)
        or as_text(attrs.get("langfuse.observation.status_message"))
        or error_type
        or exception_text
        or "error (span status ERROR, no message)"
    )
    if len(text) > _MAX_ERROR_CHARS:
        # Error text is diagnostic, not monitored content; shorten it visibly rather than drop the call.
        cut = len(text) - _MAX_ERROR_CHARS + 40
        text = text[: _MAX_ERROR_CHARS - 40] + f" ... [{cut} characters cut]"
    return text


def _metadata(
    span: Span, attrs: Attributes, resource_attrs: Attributes, merged: Attributes, scope_name: str
) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for key in _RESOURCE_METADATA_KEYS:
        if key in resource_attrs:
            metadata[key] = json_safe(resource_attrs[key])
    provider = first(attrs, "gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
    if provider is not None:
        metadata["gen_ai.provider.name"] = json_safe(provider)
    for key in _SPAN_METADATA_KEYS:
        if key in attrs:
            metadata[key] = json_safe(attrs[key])
    user = first(merged, *_USER_KEYS)
    if user is not None:
        metadata["user.id"] = json_safe(user)
    metadata["otel.span.name"] = span.name
    if scope_name:
        metadata["otel.scope.name"] = scope_name
    for key, value in merged.items():
        if key.startswith("driftloop.metadata.") and len(key) > len("driftloop.metadata."):
            metadata[key.removeprefix("driftloop.metadata.")] = json_safe(value)
    return metadata


def _validation_problem(event: Mapping[str, Any], limits: Limits) -> str | None:
    try:
        EventIn.model_validate(dict(event), context={"limits": limits})
    except ValidationError as exc:
        return "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'event'}: {error['msg']}"
            for error in exc.errors()
        )
    return None
