"""What `driftloop projects list|show` and GET /v1/project say about a project: counts, keys, settings."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.models import ApiKey, Event, Project
from monitor.pipeline.config import project_config
from monitor.pipeline.models import WindowState
from monitor.projects.service import get_project


def _events(session: Session, project_id: int) -> tuple[int, str | None]:
    n, last = session.execute(
        select(func.count(), func.max(Event.ts)).where(Event.project_id == project_id)
    ).one()
    return int(n), last.isoformat() if last else None


def project_rows(session: Session) -> list[dict[str, Any]]:
    out = []
    for p in session.scalars(select(Project).order_by(Project.slug)):
        n, last = _events(session, p.id)
        out.append({"slug": p.slug, "name": p.name, "events": n, "last_event": last,
                    "settings_changed": sorted(p.config or {})})
    return out


def summary(session: Session, project: Project) -> dict[str, Any]:
    n, last = _events(session, project.id)
    keys = session.scalar(select(func.count()).select_from(ApiKey).where(
        ApiKey.project_id == project.id, ApiKey.revoked_at.is_(None)))
    windows = session.scalar(select(func.count()).select_from(WindowState).where(
        WindowState.project_id == project.id, WindowState.computed_at.is_not(None)))
    return {"slug": project.slug, "name": project.name, "created_at": project.created_at.isoformat(),
            "events": n, "last_event": last, "keys": int(keys or 0), "windows_computed": int(windows or 0),
            "settings_changed": sorted(project.config or {}),
            "config": project_config(project).model_dump(mode="json")}


def project_summary(session: Session, slug: str) -> dict[str, Any]:
    return summary(session, get_project(session, slug))
