"""Pages of the core: the overview, a project's alerts, its webhook endpoints and delivery log (with
redelivery)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import RedirectResponse, Response

from monitor.alerts.queries import ALERT_STATUSES, alert_views, list_alerts
from monitor.alerts.rule_service import list_rules, rule_view
from monitor.alerts.triage import list_silences, rule_names, silence_dict
from monitor.api.deps import ReadSessionDep, RowId, SessionDep
from monitor.api.errors import service_status
from monitor.errors import ConflictError, NotFoundError
from monitor.models import Project
from monitor.projects.service import get_project
from monitor.safety.toxicity import active_threshold
from monitor.ui.accounts import CurrentOperator
from monitor.ui.overview import all_projects, project_status
from monitor.ui.render import render
from monitor.ui.security import FormOperatorDep, OperatorDep, settings_of
from monitor.ui.timerange import TimeRange, parse_range
from monitor.webhooks.endpoints import endpoint_view, list_endpoints
from monitor.webhooks.outbox import attempts_of, delivery_dict, list_deliveries, redeliver

router = APIRouter(prefix="/ui", include_in_schema=False)
Slug = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
NOTICES = {"redelivered": "Redelivery sent; its attempt is at the top of the delivery's log.",
           "acknowledged": "Acknowledged; the acknowledgement is in the alert's history and was sent to its webhooks.",
           "silenced": "Silenced: matching alerts are still recorded but do not page until the silence ends.",
           "lifted": "Silence lifted: matching alerts page again."}


def project_or_404(session: SessionDep, slug: str) -> Project:
    """The project `slug`; NotFoundError (the error page, 404) when there is none."""
    return get_project(session, slug)


def _cards(request: Request, session: SessionDep, projects: list[Project],
           tr: TimeRange | None = None) -> list[dict[str, Any]]:
    tr = tr or TimeRange()
    return [{"status": project_status(session, p, start=tr.start, end=tr.end),
             "sections": [section(request, session, p) for section in request.app.state.ui_sections]}
            for p in projects]


RangeParam = Annotated[str | None, Query(alias="range", max_length=8)]
FromParam = Annotated[str | None, Query(alias="from", max_length=40)]
ToParam = Annotated[str | None, Query(max_length=40)]


@router.get("/")
def overview(request: Request, session: ReadSessionDep, operator: OperatorDep, range_: RangeParam = None,
             from_: FromParam = None, to: ToParam = None) -> Response:
    tr = parse_range(range_, from_, to)
    return render(request, "overview.html", {"title": "Overview", "tr": tr,
                                             "cards": _cards(request, session, all_projects(session), tr)},
                  operator=operator)


@router.get("/p/{slug}/")
def project_page(slug: Slug, request: Request, session: ReadSessionDep, operator: OperatorDep,
                 range_: RangeParam = None, from_: FromParam = None, to: ToParam = None) -> Response:
    project = project_or_404(session, slug)
    tr = parse_range(range_, from_, to)
    return render(request, "overview.html", {"title": project.slug, "project": project, "tr": tr,
                                             "cards": _cards(request, session, [project], tr)}, operator=operator)


@router.get("/p/{slug}/alerts")
def alerts_page(
    slug: Slug, request: Request, session: ReadSessionDep, operator: OperatorDep,
    status: Annotated[str | None, Query(pattern="^(" + "|".join(ALERT_STATUSES) + ")$")] = None,
    range_: RangeParam = None, from_: FromParam = None, to: ToParam = None, done: str | None = None,
) -> Response:
    project = project_or_404(session, slug)
    return alerts_response(request, session, operator, project, status=status, tr=parse_range(range_, from_, to),
                           notice=NOTICES.get(done or ""))


def alerts_response(request: Request, session: SessionDep, operator: CurrentOperator, project: Project, *,
                    status: str | None = None, tr: TimeRange | None = None, notice: str | None = None,
                    error: str | None = None, status_code: int = 200) -> Response:
    """The alerts page: alerts (with acknowledgements and silences), the rules, the silences, triage forms."""
    tr = tr or TimeRange()
    settings = settings_of(request)
    alerts = alert_views(session, list_alerts(session, project.id, status=status, limit=200, start=tr.start,
                                              end=tr.end))
    names = rule_names(session, project.id)
    silences = [silence_dict(s, names.get(s.rule_id) if s.rule_id else None)
                for s in list_silences(session, project.id, limit=50)]
    return render(request, "alerts.html", {
        "title": f"{project.slug}: alerts", "project": project, "alerts": alerts, "status": status,
        "statuses": ALERT_STATUSES, "rules": [rule_view(r) for r in list_rules(session, project.id)],
        "silences": silences, "tr": tr, "keep": {"status": status}, "notice": notice, "error": error,
        # The "scored toxic" link filters the explorer at the threshold the safety stage counts toxic at.
        "toxicity_min": active_threshold(settings.toxicity_scorer, settings.toxicity_threshold)},
        operator=operator, status_code=status_code)


def _webhooks_page(request: Request, session: SessionDep, operator: OperatorDep, project: Project, *,
                   notice: str | None = None, error: str | None = None, status_code: int = 200) -> Response:
    rows = list_deliveries(session, project.id, limit=200)
    attempts = attempts_of(session, [d.id for d, _, _ in rows])
    deliveries = [delivery_dict(d, m, e, attempts[d.id]) for d, m, e in rows]
    endpoints = [endpoint_view(e) for e in list_endpoints(session, project.id)]
    return render(request, "webhooks.html", {"title": f"{project.slug}: webhooks", "project": project,
                                             "endpoints": endpoints, "deliveries": deliveries, "notice": notice,
                                             "error": error}, operator=operator, status_code=status_code)


@router.get("/p/{slug}/webhooks")
def webhooks_page(slug: Slug, request: Request, session: ReadSessionDep, operator: OperatorDep,
                  done: str | None = None) -> Response:
    project = project_or_404(session, slug)
    return _webhooks_page(request, session, operator, project, notice=NOTICES.get(done or ""))


@router.post("/p/{slug}/webhooks/deliveries/{delivery_id}/redeliver")
def redeliver_action(slug: Slug, delivery_id: RowId, request: Request, session: SessionDep,
                     operator: FormOperatorDep) -> Response:
    project = project_or_404(session, slug)
    try:
        redeliver(session, project.id, delivery_id, settings=settings_of(request))
    except (NotFoundError, ConflictError) as exc:
        session.rollback()
        return _webhooks_page(request, session, operator, project, error=str(exc), status_code=service_status(exc))
    session.commit()  # in-process the attempt is made right after this commit; with Celery it is queued
    return RedirectResponse(f"/ui/p/{project.slug}/webhooks?done=redelivered#delivery-{delivery_id}",
                            status_code=303)
