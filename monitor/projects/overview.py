"""What `driftloop projects list|show` and GET /v1/project say about a project: counts, keys, settings."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.errors import FieldErrors
from monitor.models import ApiKey, Event, Project
from monitor.pipeline.models import WindowState
from monitor.projects.config_service import effective
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
    stored = dict(project.config or {})
    try:
        config, problems = effective(stored), []
    except FieldErrors as exc:  # edited by hand in the database: show it, and what is wrong with it
        config, problems = stored, [f"{p.field}: {p.message}" for p in exc.problems]
    return {"slug": project.slug, "name": project.name, "created_at": project.created_at.isoformat(),
            "events": n, "last_event": last, "keys": int(keys or 0), "windows_computed": int(windows or 0),
            "settings_changed": sorted(stored), "config": config, "config_errors": problems}


def project_summary(session: Session, slug: str) -> dict[str, Any]:
    return summary(session, get_project(session, slug))
