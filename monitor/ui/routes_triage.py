"""Alert triage from the alerts page: acknowledge with a comment, silence a rule or a segment for a while, lift
a silence. The operator's name is the actor (the rows are the audit); each action redirects back with a notice."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from monitor.alerts.triage import acknowledge, lift, silence
from monitor.api.deps import RowId, SessionDep
from monitor.api.errors import service_status
from monitor.db import utcnow
from monitor.errors import ConflictError, FieldError, NotFoundError
from monitor.models import Project
from monitor.ui.routes_pages import Slug, alerts_response, project_or_404
from monitor.ui.security import CurrentOperator, FormOperatorDep, settings_of

router = APIRouter(prefix="/ui", include_in_schema=False)
DURATIONS = {"1h": timedelta(hours=1), "4h": timedelta(hours=4), "24h": timedelta(hours=24),
             "7d": timedelta(days=7)}


def _back(slug: str, done: str, anchor: str = "") -> Response:
    return RedirectResponse(f"/ui/p/{slug}/alerts?done={done}{anchor}", status_code=303)


def _triage(request: Request, session: SessionDep, operator: CurrentOperator, project: Project,
            act: Callable[[], object], refused: tuple[type[Exception], ...], done: str, anchor: str) -> Response:
    """Run one triage action: committed and redirected back with a notice, or, when refused, rolled back and the
    alerts page shown again with the reason, in the status the API answers (404 missing, 409, 422)."""
    try:
        act()
    except refused as exc:
        session.rollback()
        return alerts_response(request, session, operator, project, error=str(exc), status_code=service_status(exc))
    session.commit()
    return _back(project.slug, done, anchor)


@router.post("/p/{slug}/alerts/{alert_id}/ack")
def ack_action(slug: Slug, alert_id: RowId, request: Request, session: SessionDep, operator: FormOperatorDep,
               comment: Annotated[str, Form(max_length=2000)] = "") -> Response:
    project = project_or_404(session, slug)
    return _triage(request, session, operator, project,
                   lambda: acknowledge(session, project, alert_id, actor=operator.username, comment=comment.strip(),
                                       settings=settings_of(request)),
                   (NotFoundError, ConflictError), "acknowledged", f"#alert-{alert_id}")


@router.post("/p/{slug}/alert-silences")
def silence_action(slug: Slug, request: Request, session: SessionDep, operator: FormOperatorDep,
                   rule: Annotated[str, Form(max_length=64)] = "", segment: Annotated[str, Form(max_length=320)] = "*",
                   duration: Annotated[str, Form(max_length=8)] = "4h",
                   comment: Annotated[str, Form(max_length=2000)] = "") -> Response:
    project = project_or_404(session, slug)

    def act() -> None:
        if duration not in DURATIONS:
            raise FieldError("duration", f"one of {', '.join(DURATIONS)}")
        silence(session, project, rule=rule or None, segment=segment.strip() or "*",
                until=utcnow() + DURATIONS[duration], actor=operator.username, comment=comment.strip(),
                settings=settings_of(request))

    return _triage(request, session, operator, project, act, (NotFoundError, FieldError), "silenced", "#silences")


@router.post("/p/{slug}/alert-silences/{silence_id}/lift")
def lift_action(slug: Slug, silence_id: RowId, request: Request, session: SessionDep,
                operator: FormOperatorDep) -> Response:
    project = project_or_404(session, slug)
    return _triage(request, session, operator, project,
                   lambda: lift(session, project, silence_id, actor=operator.username),
                   (NotFoundError, ConflictError), "lifted", "#silences")
