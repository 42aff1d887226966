"""The key's project over HTTP: what it is, its settings (read; change with the admin scope, audited), the
history of changes, and which metrics it computes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request

from monitor.api.deps import AdminProject, ReaderProject, ReadSessionDep, SessionDep
from monitor.errors import FieldErrors
from monitor.metrics.catalog import project_metrics
from monitor.pipeline.config import project_config
from monitor.projects.config_service import change_config, change_view, effective, history, patch_config
from monitor.projects.overview import summary

router = APIRouter(prefix="/v1", tags=["project"])
DryRun = Annotated[bool, Query(description="Validate and report the diff and the windows affected; change nothing.")]
Recompute = Annotated[bool, Query(description="Also mark the computed windows the change affects for "
                                              "recomputation; without it the change applies from now on.")]
ConfigBody = Annotated[dict[str, Any], Body(examples=[{"window_seconds": 1800, "segment_keys": ["region"]}])]


def _actor(request: Request) -> str:
    # The key's public prefix (dl_xxxxxxxx) names who changed what; the key itself is never stored.
    token = (request.headers.get("authorization") or "").partition(" ")[2].strip()
    return f"api key {token.rsplit('_', 1)[0][:16]}" if token else "api"


@router.get("/project", summary="The key's project: counts, live keys, computed windows, every setting")
def get_project_summary(session: ReadSessionDep, project: ReaderProject) -> dict[str, Any]:
    return summary(session, project)


@router.get("/project/config", summary="Every setting with its value (defaults filled in) and what was set",
            description="`errors` lists what does not validate in a config edited by hand in the database (then "
            "`config` is what is stored); a PUT or PATCH that fixes it is accepted.")
def get_config(project: ReaderProject) -> dict[str, Any]:
    stored = dict(project.config or {})
    try:
        config, errors = effective(stored), []
    except FieldErrors as exc:
        config, errors = stored, [{"field": p.field, "message": p.message} for p in exc.problems]
    return {"project": project.slug, "config": config, "stored": stored, "errors": errors}


@router.put("/project/config", summary="Replace the project's settings (omitted ones go back to their defaults)",
            description="Validated by the schema the pipeline reads: a 422 names each bad field. The answer lists "
            "the changes and the computed windows they affect. Audited: GET /v1/project/config/history.")
def put_config(request: Request, body: ConfigBody, session: SessionDep, project: AdminProject,
               dry_run: DryRun = False, recompute: Recompute = False) -> dict[str, Any]:
    result = change_config(session, project, body, actor=_actor(request), source="api", dry_run=dry_run,
                           recompute=recompute)
    session.commit()
    return result.as_dict()


@router.patch("/project/config", summary="Change some settings (a key set to null goes back to its default)",
              description="Merges top-level keys into the stored settings; otherwise as PUT.")
def patch_project_config(request: Request, body: ConfigBody, session: SessionDep, project: AdminProject,
                         dry_run: DryRun = False, recompute: Recompute = False) -> dict[str, Any]:
    result = patch_config(session, project, body, actor=_actor(request), source="api", dry_run=dry_run,
                          recompute=recompute)
    session.commit()
    return result.as_dict()


@router.get("/project/config/history", summary="Changes of the project's settings, newest first")
def get_config_history(session: ReadSessionDep, project: ReaderProject,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[dict[str, Any]]:
    return [change_view(r) for r in history(session, project.id, limit)]


@router.get("/project/metrics", summary="Every catalog metric, with whether this project computes it and why not")
def get_project_metrics(project: ReaderProject) -> list[dict[str, object]]:
    return [m.as_dict() for m in project_metrics(project_config(project))]
