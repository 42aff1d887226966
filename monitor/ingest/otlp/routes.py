"""`POST /v1/traces`: OTLP/HTTP (protobuf or JSON, optionally gzip) with GenAI spans turned into events.

The same idempotent ingestion as `/v1/events`: span ids become client event ids, so a re-sent export stores
nothing twice. Non-LLM spans are accepted and counted, not stored; LLM spans that fail validation are reported
as an OTLP partial success and nothing else of the request is lost.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from monitor.api.body import read_body
from monitor.api.deps import IngestProject, SessionDep, charge_items
from monitor.api.telemetry import ITEMS, OTLP_SPANS
from monitor.ingest.otlp import (
    OtlpDecodeError,
    decode_export_request,
    error_response,
    export_response_for,
    spans_to_events,
)
from monitor.ingest.routes import _limits, _settings, count_stored, redacted
from monitor.ingest.service import ingest_events
from monitor.models import Project
from monitor.schemas import EventIn

router = APIRouter(prefix="/v1", tags=["opentelemetry"])


async def _raw(request: Request) -> bytes:
    # The decoder inflates gzip itself (with its own cap), so the raw body is read here, capped as sent.
    return await read_body(request, _settings(request).max_body_bytes)


@router.post(
    "/traces",
    summary="OTLP/HTTP trace export; GenAI spans become events",
    responses={
        200: {"description": "ExportTraceServiceResponse (partial_success lists rejected LLM spans)"},
        400: {"description": "Malformed OTLP body; nothing stored."},
        401: {"description": "Missing, unknown or revoked API key."},
        413: {"description": "Body, decompressed body, or number of LLM spans over the limits."},
        415: {"description": "Unsupported Content-Type or Content-Encoding."},
    },
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {"schema": {"type": "object"}},
    }}},
)
async def post_traces(
    request: Request, session: SessionDep, project: IngestProject, raw: Annotated[bytes, Depends(_raw)]
) -> Response:
    # One worker-thread hop for decoding, validating and storing the export (monitor/ingest/routes.py: why).
    return await run_in_threadpool(_store_traces, request, session, project, raw)


def _store_traces(request: Request, session: Session, project: Project, raw: bytes) -> Response:
    settings = _settings(request)
    content_type = request.headers.get("content-type")
    try:
        export = decode_export_request(
            raw, content_type, request.headers.get("content-encoding"), max_bytes=settings.max_body_bytes
        )
    except OtlpDecodeError as exc:
        body, media = error_response(str(exc), http_status=exc.http_status, request_content_type=content_type)
        OTLP_SPANS.labels("malformed").inc()
        return Response(body, status_code=exc.http_status, media_type=media)
    limits = _limits(settings)
    result = spans_to_events(export, limits=limits)
    if len(result.events) > settings.max_batch_events:
        message = f"{len(result.events)} LLM spans in one export; the limit is {settings.max_batch_events}"
        body, media = error_response(message, http_status=413, request_content_type=content_type)
        return Response(body, status_code=413, media_type=media)
    events = [EventIn.model_validate(e, context={"limits": limits}) for e in result.events]
    charge_items(request, len(events))
    counts = ingest_events(session, project.id, redacted(request, project, "events", events),
                           claim_all_ids=settings.partition_claim_all_ids)
    session.commit()
    count_stored("event", counts)
    ITEMS.labels("event", "rejected").inc(result.rejected_spans)
    OTLP_SPANS.labels("llm").inc(len(events))
    OTLP_SPANS.labels("ignored").inc(result.ignored_spans)
    body, media = export_response_for(result, content_type)
    return Response(body, status_code=200, media_type=media)
