"""The events explorer pages: a filtered, searchable list (cursor pages) and one event in full.

The same filters and queries as GET /v1/events (monitor/events/); the form submits with GET, so every view of
the explorer is a link (drift clusters, alerts and training examples link here with their filters set)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from monitor.api.deps import ReadSessionDep
from monitor.errors import FieldError
from monitor.events.filters import build_filters
from monitor.events.queries import event_detail, list_events
from monitor.ui.render import render
from monitor.ui.routes_pages import Slug, project_or_404
from monitor.ui.security import OperatorDep
from monitor.ui.timerange import parse_range

router = APIRouter(prefix="/ui", include_in_schema=False)
PAGE = 50
Opt = Annotated[str | None, Query(max_length=320)]
FORM_FIELDS = ("q", "segment", "model_version", "template_version", "metadata", "toxicity_min", "toxicity_field",
               "negative_feedback", "cluster_window", "cluster_metric", "cluster", "in_grown_cluster", "session_id",
               "trace_id", "window", "event_id", "evaluator", "eval_min", "eval_max")


def _float(name: str, raw: str | None) -> float | None:
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise FieldError(name, f"not a number: {raw!r}") from None


def _int(name: str, raw: str | None) -> int | None:
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise FieldError(name, f"not a whole number: {raw!r}") from None


@router.get("/p/{slug}/events")
def events_page(
    slug: Slug, request: Request, session: ReadSessionDep, operator: OperatorDep,
    q: Annotated[str | None, Query(max_length=200)] = None, segment: Opt = None, model_version: Opt = None,
    template_version: Opt = None, metadata: Opt = None, toxicity_min: Opt = None, toxicity_field: Opt = None,
    negative_feedback: Opt = None, cluster_window: Opt = None, cluster_metric: Opt = None, cluster: Opt = None,
    in_grown_cluster: Opt = None, session_id: Opt = None, trace_id: Opt = None, window: Opt = None,
    event_id: Opt = None, evaluator: Opt = None, eval_min: Opt = None, eval_max: Opt = None,
    range_: Annotated[str | None, Query(alias="range", max_length=8)] = None,
    from_: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    to: Annotated[str | None, Query(max_length=40)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    project = project_or_404(session, slug)
    tr = parse_range(range_, from_, to)
    form: dict[str, Any] = {k: v for k, v in request.query_params.items() if k in FORM_FIELDS}
    try:
        f = build_filters(
            start=tr.start.isoformat() if tr.start else None, end=tr.end.isoformat() if tr.end else None,
            window=window, segment=segment, model_version=model_version, template_version=template_version,
            metadata=[m.strip() for m in (metadata or "").split(",") if m.strip()],
            toxicity_min=_float("toxicity_min", toxicity_min), toxicity_field=toxicity_field or "response",
            negative_feedback=bool(negative_feedback), cluster_window=cluster_window, cluster_metric=cluster_metric,
            cluster=_int("cluster", cluster), in_grown_cluster=bool(in_grown_cluster), session_id=session_id,
            trace_id=trace_id, event_id=event_id, q=q, evaluator=evaluator, eval_min=_float("eval_min", eval_min),
            eval_max=_float("eval_max", eval_max))
        page = list_events(session, project, f, limit=PAGE, cursor=cursor)
    except FieldError as exc:
        return render(request, "events.html", {"title": f"{project.slug}: events", "project": project, "tr": tr,
                                               "form": form, "events": [], "next_url": None, "error": str(exc)},
                      operator=operator, status_code=422)
    next_url = None
    if page.next_cursor:
        keep = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
        next_url = f"?{urlencode([*keep, ('cursor', page.next_cursor)])}"
    return render(request, "events.html", {
        "title": f"{project.slug}: events", "project": project, "tr": tr, "form": form, "events": page.items,
        "next_url": next_url, "active": f.active(), "first_page": cursor is None}, operator=operator)


@router.get("/p/{slug}/events/{event_id}")
def event_page(slug: Slug, event_id: Annotated[int, Path(ge=1, le=2**63 - 1)], request: Request,
               session: ReadSessionDep, operator: OperatorDep) -> Response:
    project = project_or_404(session, slug)
    event = event_detail(session, project, event_id)
    return render(request, "event.html", {"title": f"{project.slug}: event {event['event_id']}",
                                          "project": project, "e": event}, operator=operator)
