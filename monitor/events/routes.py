"""GET /v1/events (filters, full-text search, cursor pages) and GET /v1/events/{id}, with the `read` scope."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from monitor.api.deps import ReaderProject, ReadSessionDep, RowId
from monitor.events.filters import build_filters
from monitor.events.queries import MAX_LIMIT, event_detail, list_events

router = APIRouter(prefix="/v1", tags=["events"])
Text = Annotated[str | None, Query(max_length=256)]


@router.get(
    "/events", summary="Events, newest first, with filters, full-text search and cursor pages",
    description="Every filter is optional and they combine with AND. Full-text search (`q`) uses Postgres text "
    "search (words, \"phrases\", -exclusions, `or`; English stemming) or a substring match on SQLite. Pass the "
    "response's `next_cursor` as `cursor` for the next page; it is null on the last page.",
)
def get_events(
    session: ReadSessionDep, project: ReaderProject,
    start: Annotated[str | None, Query(description="ISO 8601: events at or after")] = None,
    end: Annotated[str | None, Query(description="ISO 8601: events before")] = None,
    window: Annotated[str | None, Query(description="A window's start (ISO 8601): the events of that window")] = None,
    segment: Annotated[str | None, Query(max_length=320, description="A segment label: `model_version=v2`, "
                                                                      "`tier=gold`")] = None,
    model_version: Text = None,
    template_version: Text = None,
    metadata: Annotated[list[str] | None, Query(description="key=value, repeatable; all must hold")] = None,
    toxicity_min: Annotated[float | None, Query(ge=0, le=1, description="Toxicity score at least this")] = None,
    toxicity_field: Literal["prompt", "response"] = "response",
    negative_feedback: Annotated[bool, Query(description="Only events with feedback that is not positive")] = False,
    evaluator: Annotated[str | None, Query(max_length=48, description="Only events this evaluator's newest version "
                                                                       "scored")] = None,
    eval_min: Annotated[float | None, Query(ge=0, le=1, description="The evaluator's score at least this")] = None,
    eval_max: Annotated[float | None, Query(ge=0, le=1, description="The evaluator's score at most this")] = None,
    cluster_window: Annotated[str | None, Query(description="Events a drift explanation of this window put in "
                                                            "a grown cluster")] = None,
    cluster_metric: Annotated[str | None, Query(max_length=96)] = None,
    cluster: Annotated[int | None, Query(ge=0, le=10_000)] = None,
    in_grown_cluster: Annotated[bool, Query(description="Only events in any grown drift cluster")] = False,
    session_id: Text = None,
    trace_id: Text = None,
    event_id: Annotated[str | None, Query(max_length=128, description="The event id the client sent")] = None,
    q: Annotated[str | None, Query(max_length=200, description="Full-text search on prompt and response")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> dict[str, Any]:
    f = build_filters(start=start, end=end, window=window, segment=segment, model_version=model_version,
                      template_version=template_version, metadata=metadata, toxicity_min=toxicity_min,
                      toxicity_field=toxicity_field, negative_feedback=negative_feedback,
                      cluster_window=cluster_window, cluster_metric=cluster_metric, cluster=cluster,
                      in_grown_cluster=in_grown_cluster, session_id=session_id, trace_id=trace_id,
                      event_id=event_id, q=q, evaluator=evaluator, eval_min=eval_min, eval_max=eval_max)
    page = list_events(session, project, f, limit=limit, cursor=cursor)
    return {"items": page.items, "next_cursor": page.next_cursor, "filters": f.active()}


@router.get("/events/{event_id}", summary="One event: every score, its feedback, its drift clusters, its session")
def get_event(event_id: RowId, session: ReadSessionDep, project: ReaderProject) -> dict[str, Any]:
    return event_detail(session, project, event_id)
