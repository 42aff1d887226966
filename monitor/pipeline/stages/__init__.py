"""Window stages: each computes one family of metrics for one (project, window) and upserts its rows.

A stage is a plain service function `(session, ctx) -> rows written`; the runner (in-process or Celery)
decides where it runs (`queue`). The stages are an explicit table, in the order they run: what exists does
not depend on which module happened to be imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from monitor.drift.determinism import single_blas_thread
from monitor.pipeline.context import StageFn, WindowContext, window_context
from monitor.pipeline.stages.drift import compute_drift
from monitor.pipeline.stages.evaluators import compute_evaluators
from monitor.pipeline.stages.ops import compute_ops
from monitor.pipeline.stages.safety import compute_safety

__all__ = ["STAGES", "Stage", "StageFn", "WindowContext", "get_stage", "run_stage", "stages", "window_context"]


@dataclass(frozen=True)
class Stage:
    name: str
    queue: str  # "default" or "gpu"
    fn: StageFn


STAGES: tuple[Stage, ...] = (
    Stage("ops", "default", compute_ops),
    Stage("drift", "gpu", compute_drift),
    Stage("safety", "gpu", compute_safety),
    Stage("evaluators", "gpu", compute_evaluators),
)


def stages() -> list[Stage]:
    return list(STAGES)


def get_stage(name: str) -> Stage:
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise KeyError(f"unknown stage {name!r}; known: {', '.join(sorted(s.name for s in STAGES))}")


def run_stage(session: Session, name: str, project_id: int, window_start: datetime) -> int:
    """Load by id, run one stage, return rows written. The caller commits.

    One BLAS thread, so that a worker, the in-process runner and a re-run write bit-identical rows whatever
    their thread settings (monitor/drift/determinism.py)."""
    with single_blas_thread():
        return get_stage(name).fn(session, window_context(session, project_id, window_start))
