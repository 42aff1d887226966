"""Window stages: each computes one family of metrics for one (project, window) and upserts its rows.

A stage is a plain service function `(session, ctx) -> rows written`; the runner (in-process or Celery)
decides where it runs (`queue`). Later capabilities register more stages (safety) the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from monitor.drift.determinism import single_blas_thread
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


@dataclass(frozen=True)
class Stage:
    name: str
    queue: str  # "default" or "gpu"
    fn: StageFn
    order: int


_STAGES: dict[str, Stage] = {}


def register_stage(name: str, *, queue: str = "default", order: int = 100) -> Callable[[StageFn], StageFn]:
    def deco(fn: StageFn) -> StageFn:
        _STAGES[name] = Stage(name, queue, fn, order)
        return fn

    return deco


def stages() -> list[Stage]:
    _load_builtin_stages()
    return sorted(_STAGES.values(), key=lambda s: (s.order, s.name))


def get_stage(name: str) -> Stage:
    _load_builtin_stages()
    try:
        return _STAGES[name]
    except KeyError:
        raise KeyError(f"unknown stage {name!r}; known: {', '.join(sorted(_STAGES))}") from None


def _load_builtin_stages() -> None:
    from monitor.pipeline import drift_stage, ops_stage, safety_stage  # noqa: F401  (registration by import)


def window_context(session: Session, project_id: int, window_start: datetime) -> WindowContext:
    project = session.get(Project, project_id)
    if project is None:
        raise LookupError(f"project {project_id} does not exist")
    cfg = project_config(project)
    return WindowContext(project, cfg, window_start, window_start + timedelta(seconds=cfg.window_seconds))


def run_stage(session: Session, name: str, project_id: int, window_start: datetime) -> int:
    """Load by id, run one stage, return rows written. The caller commits.

    One BLAS thread, so that a worker, the in-process runner and a re-run write bit-identical rows whatever
    their thread settings (monitor/drift/determinism.py)."""
    with single_blas_thread():
        return get_stage(name).fn(session, window_context(session, project_id, window_start))
