"""Alert rules (CRUD and YAML import), alerts with their transitions, and action requests."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from monitor.alerts.actions import action_request_dict, list_action_requests
from monitor.alerts.queries import ALERT_STATUSES, alert_views, list_alerts
from monitor.alerts.rule_service import (
    apply_rules,
    create_rule,
    delete_rule,
    get_rule,
    list_rules,
    rule_view,
    rule_warnings,
    update_rule,
)
from monitor.alerts.rules import MAX_YAML_BYTES, NAME_PATTERN, RuleSpec, parse_rule_file
from monitor.alerts.triage import ack_dict, acknowledge, lift, list_silences, rule_names, silence, silence_dict
from monitor.api.body import read_body
from monitor.api.deps import AdminProject, ReaderProject, ReadSessionDep, RowId, SessionDep
from monitor.api.offload import run_blocking
from monitor.db import utcnow
from monitor.errors import FieldError
from monitor.timestamps import UtcTime

router = APIRouter(prefix="/v1", tags=["alerts"])


@router.get("/alert-rules", summary="The project's alert rules")
def get_rules(session: ReadSessionDep, project: ReaderProject) -> list[dict[str, Any]]:
    return [rule_view(r) for r in list_rules(session, project.id)]


@router.post("/alert-rules", status_code=201, summary="Create an alert rule")
def post_rule(spec: RuleSpec, session: SessionDep, project: AdminProject) -> dict[str, Any]:
    row = create_rule(session, project.id, spec)
    session.commit()
    return {**rule_view(row), "warnings": rule_warnings(project, [spec])}


@router.get("/alert-rules/{name}", summary="One alert rule")
def get_one_rule(name: str, session: ReadSessionDep, project: ReaderProject) -> dict[str, Any]:
    return rule_view(get_rule(session, project.id, name))


@router.put("/alert-rules/{name}", summary="Replace an alert rule")
def put_rule(name: str, spec: RuleSpec, session: SessionDep, project: AdminProject) -> dict[str, Any]:
    row = update_rule(session, project.id, name, spec)
    session.commit()
    return {**rule_view(row), "warnings": rule_warnings(project, [spec])}


@router.delete("/alert-rules/{name}", status_code=204, summary="Delete an alert rule and its alert history")
def remove_rule(name: str, session: SessionDep, project: AdminProject) -> Response:
    delete_rule(session, project.id, name)
    session.commit()
    return Response(status_code=204)


class ImportReport(BaseModel):
    created: list[str]
    updated: list[str]
    unchanged: list[str]
    deleted: list[str]
    dry_run: bool
    warnings: list[str] = []  # rules that cannot fire under the project's settings (accepted all the same)


@router.post(
    "/alert-rules/import", summary="Apply a YAML rule file",
    description="Body: the YAML file (`rules:` list). Rules are matched by name: new ones are created, changed "
    "ones updated; with `prune=true` rules the file does not name are deleted. All or nothing.",
    openapi_extra={"requestBody": {"content": {"application/yaml": {"schema": {"type": "string"}}}}},
)
async def import_rules(
    request: Request, session: SessionDep, project: AdminProject,
    prune: bool = False, dry_run: bool = False,
) -> ImportReport:
    raw = await read_body(request, MAX_YAML_BYTES)  # the one awaited step; the rest blocks, so it runs off the loop
    project_id, slug = project.id, project.slug

    def work() -> ImportReport:
        parsed = parse_rule_file(raw)  # no aliases, nesting <= 32 (monitor/yaml_input.py)
        if parsed.project is not None and parsed.project != slug:
            raise FieldError("project", f"the file is for project {parsed.project!r}, but this API key belongs to "
                             f"{slug!r}")
        report = apply_rules(session, project_id, parsed.rules, prune=prune)
        if dry_run:
            session.rollback()
        else:
            session.commit()
        return ImportReport(**report.as_dict(), dry_run=dry_run, warnings=rule_warnings(project, parsed.rules))

    # One import at a time per process (the `admin` lane): parallel hostile imports queue, they do not take
    # every worker thread, and the event loop keeps answering other tenants and /healthz meanwhile.
    return await run_blocking(work, lane="admin")


@router.get("/alerts", summary="Alerts, newest first, each with its transitions and their metric values")
def get_alerts(
    session: ReadSessionDep, project: ReaderProject,
    alert_status: Annotated[str | None, Query(alias="status", pattern="^(" + "|".join(ALERT_STATUSES) + ")$")] = None,
    rule: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    return alert_views(session, list_alerts(session, project.id, status=alert_status, rule=rule, limit=limit))


@router.get("/alert-actions", summary="Action requests (e.g. retrain) made by firing alerts")
def get_action_requests(
    session: ReadSessionDep, project: ReaderProject,
    request_status: Annotated[str | None, Query(alias="status", pattern="^(pending|done|failed)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    return [action_request_dict(r) for r in list_action_requests(session, project.id, status=request_status,
                                                                 limit=limit)]


class AckIn(BaseModel):
    comment: str = Field("", max_length=2000, description="Why, what is being done; kept in the alert's history.")
    actor: str = Field("api", min_length=1, max_length=100, description="Who acknowledges (recorded as api:<actor>).")


class SilenceIn(BaseModel):
    rule: str | None = Field(None, pattern=NAME_PATTERN, description="The rule to silence; omit for every rule "
                                                                     "(then name a segment).")
    segment: str = Field("*", min_length=1, max_length=320, description="A segment label or glob.")
    until: UtcTime | None = Field(None, description="When the silence ends (ISO 8601, in the future).")
    minutes: int | None = Field(None, ge=1, le=60 * 24 * 90, description="Or: how long, from now.")
    comment: str = Field("", max_length=2000)
    actor: str = Field("api", min_length=1, max_length=100)


class LiftIn(BaseModel):
    actor: str = Field("api", min_length=1, max_length=100)


@router.post("/alerts/{alert_id}/ack", status_code=201, summary="Acknowledge an alert (sends alert.acknowledged)")
def post_ack(alert_id: RowId, body: AckIn, request: Request, session: SessionDep,
             project: AdminProject) -> dict[str, Any]:
    ack = acknowledge(session, project, alert_id, actor=f"api:{body.actor}", comment=body.comment,
                      settings=request.app.state.settings)
    session.commit()
    return ack_dict(ack)


@router.get("/alert-silences", summary="Silences, newest first (active_only for those in force now)")
def get_silences(session: ReadSessionDep, project: ReaderProject, active_only: bool = False) -> list[dict[str, Any]]:
    names = rule_names(session, project.id)
    return [silence_dict(s, names.get(s.rule_id) if s.rule_id else None)
            for s in list_silences(session, project.id, active_only=active_only)]


@router.post("/alert-silences", status_code=201,
             summary="Silence a rule or a segment until a time: its alerts are recorded but do not page")
def post_silence(body: SilenceIn, request: Request, session: SessionDep, project: AdminProject) -> dict[str, Any]:
    if (body.until is None) == (body.minutes is None):
        raise FieldError("until", "give either until (a time) or minutes (a duration)")
    until = body.until if body.until is not None else utcnow() + timedelta(minutes=body.minutes or 0)
    if until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    sil = silence(session, project, rule=body.rule, segment=body.segment, until=until, actor=f"api:{body.actor}",
                  comment=body.comment, settings=request.app.state.settings)
    session.commit()
    return silence_dict(sil, body.rule)


@router.post("/alert-silences/{silence_id}/lift", summary="Lift a silence now (kept in the history)")
def post_lift(silence_id: RowId, body: LiftIn, session: SessionDep, project: AdminProject) -> dict[str, Any]:
    sil = lift(session, project, silence_id, actor=f"api:{body.actor}")
    session.commit()
    return silence_dict(sil, rule_names(session, project.id).get(sil.rule_id) if sil.rule_id else None)
