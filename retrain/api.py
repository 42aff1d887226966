"""The loop's HTTP API, mounted under /v1 by the collector app: versions, decisions, jobs, the audit log.

Authenticated like every project route (Bearer project key). Decisions name an `actor` and a `reason`; they
are what the audit log records. A version that failed its gates needs `override: true` and a reason.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import Field

from monitor.api.deps import AdminProject, KeyPrincipal, ReaderProject, ReadSessionDep, RowId, SessionDep
from monitor.schemas import NulFreeModel
from monitor.settings import Settings
from retrain.jobs.config import ConfigError
from retrain.jobs.service import JobConflict, create_job, get_job, job_dict, list_jobs, submit
from retrain.registry.service import (
    aliases_of,
    approve,
    audit_entries,
    get_version,
    list_versions,
    reject,
    version_names,
)
from retrain.registry.swap import change_champion
from retrain.registry.views import audit_dict, hook_dict, version_dict, version_summary

router = APIRouter(prefix="/v1", tags=["models"])
Actor = Annotated[str, Field(min_length=1, max_length=256, description=(
    "Who decides (a person or a system), as a label; the audit log also records the API key that made the request "
    "(its principal), whatever this says."))]


class Decision(NulFreeModel):
    actor: Actor
    reason: str | None = Field(None, max_length=4000, description="Why; required with override.")
    override: bool = Field(False, description="Approve/promote a version that failed its gates (audited).")


class RetrainRequest(NulFreeModel):
    actor: Actor
    reason: str | None = Field(None, max_length=4000)
    params: dict[str, Any] = Field(default_factory=dict, description="Overrides: lora, gates, dataset, eval, "
                                   "min_examples (see docs/retrain.md).")


@router.get("/models", summary="Model versions and the champion/challenger aliases")
def get_models(request: Request, session: ReadSessionDep, project: ReaderProject) -> dict[str, Any]:
    aliases = aliases_of(session, project.id)
    settings: Settings = request.app.state.settings
    return {"aliases": aliases,
            "versions": [version_summary(v, aliases, settings) for v in list_versions(session, project.id)]}


@router.get("/models/{version}", summary="One version (name or alias) with its evaluation and audit trail")
def get_model(version: str, request: Request, session: ReadSessionDep, project: ReaderProject) -> dict[str, Any]:
    v = get_version(session, project.id, version)
    names = version_names(session, project.id)
    parent = names.get(v.parent_version_id) if v.parent_version_id else None
    body = version_dict(v, aliases_of(session, project.id), parent, request.app.state.settings)
    body["audit"] = [audit_dict(e, names) for e in audit_entries(session, project.id, version_id=v.id)]
    return body


@router.post("/models/{version}/{decision}", summary="approve, reject, promote or roll back a version")
def decide(version: str, decision: Literal["approve", "reject", "promote", "rollback"], body: Decision,
           request: Request, session: SessionDep, project: AdminProject, principal: KeyPrincipal) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    if decision in ("approve", "reject"):
        if decision == "approve":
            v = approve(session, project.id, version, actor=body.actor, reason=body.reason,
                        override=body.override, principal=principal)
        else:
            v = reject(session, project.id, version, actor=body.actor, reason=body.reason, principal=principal)
        session.commit()
        return {"version": version_summary(v, aliases_of(session, project.id), settings)}
    # The swap commits in units of its own (alias move, then the hook's audit entry); this request's
    # session must hold no transaction meanwhile (read the id first: a rollback expires `project`).
    project_id = project.id
    session.rollback()
    action: Literal["promote", "rollback"] = "promote" if decision == "promote" else "rollback"
    swap, hook = change_champion(request.app.state.session_factory, project_id, action, version,
                                 actor=body.actor, reason=body.reason, override=body.override,
                                 settings=settings, principal=principal)
    return {"champion": swap.current.name, "previous": swap.previous.name if swap.previous else None,
            "serving_hook": hook_dict(hook)}


@router.get("/audit", summary="The audit log of the project's model registry, newest first")
def get_audit(session: ReadSessionDep, project: ReaderProject,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    names = version_names(session, project.id)
    return [audit_dict(e, names) for e in audit_entries(session, project.id, limit=limit)]


@router.post("/retrain", status_code=status.HTTP_202_ACCEPTED, summary="Start a retraining job now",
             responses={409: {"description": "The project already has a queued or running job (`job_id`)."}})
def start_retrain(body: RetrainRequest, request: Request, session: SessionDep,
                  project: AdminProject) -> Any:
    """Queue a job and answer at once: training runs on a worker (Celery's `gpu` queue) or, in embedded mode, on
    the collector's serial runner (one job at a time), never in this request. One queued/running job per project."""
    settings: Settings = request.app.state.settings
    try:
        job = create_job(session, project.id, created_by=body.actor, params=body.params, settings=settings,
                         trigger={"kind": "manual", "actor": body.actor, "reason": body.reason}, exclusive=True)
    except ConfigError as exc:  # the request's `params` are what did not fit
        raise ConfigError(str(exc), field="params") from None
    except JobConflict as exc:
        return JSONResponse({"detail": str(exc), "job_id": exc.job_id, "job_status": exc.status},
                            status_code=status.HTTP_409_CONFLICT)
    session.commit()
    # After the commit: the worker (or the serial runner in embedded mode) must find the row.
    submit(job.id, settings=settings, factory=request.app.state.session_factory)
    return job_dict(job, settings)


@router.get("/retrain/jobs", summary="Retraining jobs, newest first")
def get_jobs(request: Request, session: ReadSessionDep, project: ReaderProject,
             limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict[str, Any]]:
    return [job_dict(j, request.app.state.settings) for j in list_jobs(session, project.id, limit=limit)]


@router.get("/retrain/jobs/{job_id}", summary="One job with its progress and losses so far")
def get_retrain_job(job_id: RowId, request: Request, session: ReadSessionDep, project: ReaderProject) -> dict[str, Any]:
    return job_dict(get_job(session, project.id, job_id), request.app.state.settings)


class ErasureRequest(NulFreeModel):
    actor: Actor
    reason: str | None = Field(None, max_length=4000)
    session_id: str | None = Field(None, max_length=128, description="Erase every event of this session id.")
    metadata: dict[str, str] | None = Field(
        None, description="One key: value; erase every event whose metadata has it (string comparison)."
    )
    event_ids: list[str] = Field(default_factory=list, max_length=10_000, description="Client event ids.")
    dry_run: bool = Field(False, description="Only report what would be erased.")


@router.post("/erasure", summary="Erase a user's data (session, metadata value or event ids); dry run first")
def post_erasure(body: ErasureRequest, request: Request, session: SessionDep, project: AdminProject) -> dict[str, Any]:
    from monitor.errors import FieldError
    from monitor.privacy.erasure import Selector
    from retrain.registry.erasure import erase

    if body.metadata is not None and len(body.metadata) != 1:
        raise FieldError("body.metadata", "give exactly one key: value")
    try:
        sel = Selector(session_id=body.session_id,
                       metadata=next(iter(body.metadata.items())) if body.metadata else None,
                       event_ids=tuple(body.event_ids))
    except ValueError as exc:
        raise FieldError("body", str(exc)) from None
    settings: Settings = request.app.state.settings
    # Erasure commits in batches of its own; this request's session must hold no transaction meanwhile.
    project_id = project.id
    session.rollback()
    out = erase(request.app.state.session_factory, project_id, sel, actor=body.actor, reason=body.reason,
                batch_size=settings.retention_batch_size, dry_run=body.dry_run)
    return out.as_dict()
