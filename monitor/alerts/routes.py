"""Alert rules (CRUD and YAML import), alerts with their transitions, and action requests."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from monitor.alerts.actions import action_request_dict, list_action_requests
from monitor.alerts.queries import ALERT_STATUSES, alert_views, list_alerts
from monitor.alerts.rule_service import (
    apply_rules,
    create_rule,
    delete_rule,
    get_rule,
    list_rules,
    rule_view,
    update_rule,
)
from monitor.alerts.rules import MAX_YAML_BYTES, NAME_PATTERN, RuleSpec, parse_rule_file
from monitor.api.body import read_body
from monitor.api.deps import AdminProject, ReaderProject, SessionDep
from monitor.errors import FieldError
from monitor.offload import run_blocking

router = APIRouter(prefix="/v1", tags=["alerts"])


@router.get("/alert-rules", summary="The project's alert rules")
def get_rules(session: SessionDep, project: ReaderProject) -> list[dict[str, Any]]:
    return [rule_view(r) for r in list_rules(session, project.id)]


@router.post("/alert-rules", status_code=201, summary="Create an alert rule")
def post_rule(spec: RuleSpec, session: SessionDep, project: AdminProject) -> dict[str, Any]:
    row = create_rule(session, project.id, spec)
    session.commit()
    return rule_view(row)


@router.get("/alert-rules/{name}", summary="One alert rule")
def get_one_rule(name: str, session: SessionDep, project: ReaderProject) -> dict[str, Any]:
    return rule_view(get_rule(session, project.id, name))


@router.put("/alert-rules/{name}", summary="Replace an alert rule")
def put_rule(name: str, spec: RuleSpec, session: SessionDep, project: AdminProject) -> dict[str, Any]:
    row = update_rule(session, project.id, name, spec)
    session.commit()
    return rule_view(row)


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
        return ImportReport(**report.as_dict(), dry_run=dry_run)

    # One import at a time per process (the `admin` lane): parallel hostile imports queue, they do not take
    # every worker thread, and the event loop keeps answering other tenants and /healthz meanwhile.
    return await run_blocking(work, lane="admin")


@router.get("/alerts", summary="Alerts, newest first, each with its transitions and their metric values")
def get_alerts(
    session: SessionDep, project: ReaderProject,
    alert_status: Annotated[str | None, Query(alias="status", pattern="^(" + "|".join(ALERT_STATUSES) + ")$")] = None,
    rule: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    return alert_views(session, list_alerts(session, project.id, status=alert_status, rule=rule, limit=limit))


@router.get("/alert-actions", summary="Action requests (e.g. retrain) made by firing alerts")
def get_action_requests(
    session: SessionDep, project: ReaderProject,
    request_status: Annotated[str | None, Query(alias="status", pattern="^(pending|done|failed)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    return [action_request_dict(r) for r in list_action_requests(session, project.id, status=request_status,
                                                                 limit=limit)]
