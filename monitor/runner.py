"""Running window jobs: in-process (embedded mode, tests, the demo) or through Celery (production).

Both paths call the same service functions, each stage in its own session committed once; Celery tasks are
only sent after the scan's commit, with ids as arguments.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from monitor.db import run_unit, session_factory, utcnow
from monitor.pipeline.scheduler import WindowJob, finish_window, scan
from monitor.pipeline.stages import run_stage, stages
from monitor.settings import get_settings

log = logging.getLogger(__name__)

# Called with (session, project_id, window_start) inside the finishing transaction, to queue follow-up work
# (alert evaluation) that must only see committed metric rows.
WindowHook = Callable[[Session, int, datetime], None]
_after_window: list[WindowHook] = []
# Called with (session factory, now) after an in-process run, for follow-up work that is due by then
# (webhook retries): the embedded mode's equivalent of a beat task.
RunHook = Callable[[sessionmaker[Session], datetime], None]
_after_run: list[RunHook] = []


def on_window_computed(hook: WindowHook) -> WindowHook:
    if hook not in _after_window:
        _after_window.append(hook)
    return hook


def on_run_finished(hook: RunHook) -> RunHook:
    if hook not in _after_run:
        _after_run.append(hook)
    return hook


def _load_builtin_hooks() -> None:
    from monitor.alerts import hooks  # noqa: F401  (registration by import, like the built-in stages)
    from monitor.services.retention import retention_after_run

    on_run_finished(retention_after_run)


@dataclass
class RunReport:
    windows: int = 0
    rows: int = 0
    failures: list[str] = field(default_factory=list)


def process_window(
    project_id: int, window_start: datetime, *, factory: sessionmaker[Session] | None = None,
    only: list[str] | None = None,
) -> int:
    """Every stage of one window, in order, each committed on its own; then mark the window done."""
    factory = factory or session_factory()
    started = utcnow()
    rows = 0
    for stage in stages():
        if only is not None and stage.name not in only:
            continue
        rows += run_unit(factory, _stage_runner(stage.name, project_id, window_start))
    run_unit(factory, lambda s: _finish(s, project_id, window_start, started))
    return rows


def _stage_runner(name: str, project_id: int, window_start: datetime) -> Callable[[Session], int]:
    return lambda session: run_stage(session, name, project_id, window_start)


def _finish(session: Session, project_id: int, window_start: datetime, started: datetime) -> None:
    finish_window(session, project_id, window_start, started)
    _load_builtin_hooks()
    for hook in _after_window:
        hook(session, project_id, window_start)


def run_pending(
    now: datetime | None = None, *, factory: sessionmaker[Session] | None = None, project_ids: list[int] | None = None,
    progress: Callable[[WindowJob], None] | None = None,
) -> RunReport:
    """Scan, then compute every dirty window in this process (embedded mode's equivalent of beat + workers)."""
    factory = factory or session_factory()
    now = now or utcnow()
    jobs = run_unit(factory, lambda s: scan(s, now, project_ids))
    report = RunReport()
    for job in jobs:
        try:
            report.rows += process_window(job.project_id, job.window_start, factory=factory)
            report.windows += 1
        except Exception as exc:  # one broken window must not stop the others; it stays dirty for the next run
            log.exception("window %s of project %s failed", job.window_start, job.project_id)
            report.failures.append(f"{job.project_id}@{job.window_start.isoformat()}: {exc}")
        if progress:
            progress(job)
    _load_builtin_hooks()
    for hook in _after_run:
        try:
            hook(factory, now)
        except Exception as exc:  # follow-up work is retried on the next run; the windows are done
            log.exception("after-run hook %s failed", getattr(hook, "__name__", hook))
            report.failures.append(f"after-run {getattr(hook, '__name__', hook)}: {exc}")
    return report


def tick(now: datetime | None = None, *, factory: sessionmaker[Session] | None = None) -> int:
    """One scheduler tick: in-process runs the work now; with Celery, sends one chain per window after commit."""
    if get_settings().runner == "inprocess":
        return run_pending(now, factory=factory).windows
    from monitor.worker.tasks import dispatch_windows

    factory = factory or session_factory()
    interval = timedelta(seconds=get_settings().recompute_interval_seconds)
    jobs = run_unit(factory, lambda s: scan(s, now or utcnow(), min_interval=interval))
    dispatch_windows(jobs)  # after the commit above: a task never sees an uncommitted window state
    return len(jobs)
