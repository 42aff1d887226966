"""What a window stage gets: the project, its config and the window's bounds, loaded by id."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from monitor.models import Project
from monitor.pipeline.config import ProjectConfig, project_config


@dataclass
class WindowContext:
    project: Project
    config: ProjectConfig
    window_start: datetime
    window_end: datetime
    cache: dict[str, Any] = field(default_factory=dict)


StageFn = Callable[[Session, WindowContext], int]


def window_context(session: Session, project_id: int, window_start: datetime) -> WindowContext:
    project = session.get(Project, project_id)
    if project is None:
        raise LookupError(f"project {project_id} does not exist")
    cfg = project_config(project)
    return WindowContext(project, cfg, window_start, window_start + timedelta(seconds=cfg.window_seconds))
