"""`POST /v1/events` and `POST /v1/feedback`: authenticated, size-limited, idempotent batch ingestion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from monitor.api.body import M, decode_content, parse_batch, read_body
from monitor.api.deps import IngestProject, SessionDep, charge_items
from monitor.api.telemetry import ITEMS
from monitor.ingest.fastparse import FastEvent, parse_events
from monitor.ingest.service import IngestCounts, ingest_events, ingest_feedback
from monitor.models import Project
from monitor.privacy.ingest import M as Item
from monitor.privacy.ingest import redact_batch
from monitor.privacy.policy import project_privacy
from monitor.schemas import EventBatch, EventIn, FeedbackBatch, IngestResult, Limits
from monitor.settings import Settings

router = APIRouter(prefix="/v1", tags=["ingestion"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Body is not valid gzip/deflate."},
    401: {"description": "Missing, unknown or revoked API key."},
    403: {"description": "The key lacks the `ingest` scope, or belongs to another project than "
                         "`X-Driftloop-Project` names. Nothing stored."},
    413: {"description": "Body or batch larger than the configured limits; nothing stored."},
    415: {"description": "Unsupported Content-Encoding."},
    422: {"description": "A field is invalid, or holds PII the project refuses; `detail` names each field and why "
                         "(never the value). Nothing stored."},
    429: {"description": "Rate limited (requests or items per API key); retry after `Retry-After` seconds."},
    503: {"description": "Database unavailable, or PII redaction failed; retry after `Retry-After` seconds. "
                         "Nothing stored."},
}


def _body_schema(model: str) -> dict[str, Any]:
    # The body is parsed by hand (size caps, gzip), so the OpenAPI document is told its schema explicitly.
    ref = {"$ref": f"#/components/schemas/{model}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _raw_body(request: Request) -> bytes:
    return await read_body(request, _settings(request).max_body_bytes)


def _inflated(request: Request, raw: bytes) -> bytes:
    # Inflating up to max_body_bytes takes milliseconds of CPU: called in the route's worker thread, never on the
    # event loop.
    return decode_content(raw, request.headers.get("content-encoding"), _settings(request).max_body_bytes)


def _limits(settings: Settings) -> Limits:
    return Limits(
        max_text_chars=settings.max_text_chars,
        max_metadata_bytes=settings.max_metadata_bytes,
        max_batch_items=settings.max_batch_events,
    )


def _count_rejected(kind: str, key: str, body: bytes) -> None:
    """Count the items of a refused batch when it is at least JSON; a batch that isn't counts as one."""
    try:
        items = orjson.loads(body).get(key)
        n = len(items) if isinstance(items, list) else 1
    except Exception:
        n = 1
    ITEMS.labels(kind, "rejected").inc(max(n, 1))


def _parse(model: type[M], request: Request, body: bytes, kind: str, key: str) -> M:
    try:
        return parse_batch(model, body, _limits(_settings(request)))
    except Exception:
        _count_rejected(kind, key, body)
        raise


def redacted(request: Request, project: Project, kind: str, items: Sequence[Item]) -> list[Item]:
    """PII redacted per the project's policy, before anything is written (monitor/privacy)."""
    settings = _settings(request)
    privacy = project_privacy(settings, project.id, project.config)
    return redact_batch(privacy, kind, items, retry_after=settings.retry_after_seconds)


def count_stored(kind: str, counts: IngestCounts) -> IngestResult:
    ITEMS.labels(kind, "accepted").inc(counts.accepted)
    ITEMS.labels(kind, "duplicate").inc(counts.duplicates)
    return IngestResult(accepted=counts.accepted, duplicates=counts.duplicates)


@router.post(
    "/events",
    response_model=IngestResult,
    responses=_ERRORS,
    openapi_extra=_body_schema("EventBatch"),
    summary="Store a batch of LLM call events (idempotent by event_id)",
)
async def post_events(
    request: Request,
    session: SessionDep,
    project: IngestProject,
    raw: Annotated[bytes, Depends(_raw_body)],
) -> IngestResult:
    # Async with one worker-thread hop for the whole batch (inflate, parse, redact, write, commit): a sync route
    # and a sync body dependency cost a hop each, and FastAPI serialises a sync route's result in another.
    return await run_in_threadpool(_store_events, request, session, project, raw)


def _store_events(request: Request, session: Session, project: Project, raw: bytes) -> IngestResult:
    body = _inflated(request, raw)
    # msgspec for the bodies it can vouch for, the pydantic schema (and its error messages) for every other one.
    events: Sequence[EventIn | FastEvent] | None = parse_events(body, _limits(_settings(request)))
    if events is None:
        events = _parse(EventBatch, request, body, "event", "events").events
    charge_items(request, len(events))
    counts = ingest_events(session, project.id, redacted(request, project, "events", events),
                           claim_all_ids=_settings(request).partition_claim_all_ids)
    session.commit()
    return count_stored("event", counts)


@router.post(
    "/feedback",
    response_model=IngestResult,
    responses=_ERRORS,
    openapi_extra=_body_schema("FeedbackBatch"),
    summary="Store a batch of user feedback (idempotent by feedback_id; the event may arrive later)",
)
async def post_feedback(
    request: Request,
    session: SessionDep,
    project: IngestProject,
    raw: Annotated[bytes, Depends(_raw_body)],
) -> IngestResult:
    return await run_in_threadpool(_store_feedback, request, session, project, raw)


def _store_feedback(request: Request, session: Session, project: Project, raw: bytes) -> IngestResult:
    batch = _parse(FeedbackBatch, request, _inflated(request, raw), "feedback", "feedback")
    charge_items(request, len(batch.feedback))
    counts = ingest_feedback(session, project.id, redacted(request, project, "feedback", batch.feedback),
                             claim_all_ids=_settings(request).partition_claim_all_ids)
    session.commit()
    return count_stored("feedback", counts)
