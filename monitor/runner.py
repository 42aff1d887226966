"""Running window jobs: in-process (embedded mode, tests, the demo) or through Celery (production).

Both paths call the same service functions, each stage in its own session committed once; Celery tasks are
only sent after the scan's commit, by name with ids as arguments (`monitor.queue`).

Follow-up work is an explicit table of subscribers, handed over by the composition root (`wire`), never
registered by importing a module: after a window's metrics commit (alert evaluation), and after an in-process
run (webhook retries, retention).

The stages (and with them the numeric stack: SciPy, scikit-learn, the embedder) are imported where a window
runs, not here: every entry point imports this module, and `driftloop --help` must not wait seconds for them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from monitor.db import run_unit, session_factory, utcnow
from monitor.pipeline.scheduler import WindowJob, finish_window, scan
from monitor.queue import Step, enqueue_chain, runs_inline
from monitor.settings import get_settings

log = logging.getLogger(__name__)

# Called with (session, project_id, window_start) inside the finishing transaction, to queue follow-up work
# (alert evaluation) that must only see committed metric rows.
WindowHook = Callable[[Session, int, datetime], None]
# Called with (session factory, now) after an in-process run, for follow-up work that is due by then
# (webhook retries): the embedded mode's equivalent of a beat task.
RunHook = Callable[[sessionmaker[Session], datetime], None]
_after_window: list[WindowHook] = []
_after_run: list[RunHook] = []
STAGE_TASK = "driftloop.run_stage"
FINISH_TASK = "driftloop.finish_window"


def wire(*, after_window: Sequence[WindowHook] = (), after_run: Sequence[RunHook] = ()) -> None:
    """Set the subscribers (the composition root calls this once per process; calling again replaces them)."""
    _after_window[:] = list(after_window)
    _after_run[:] = list(after_run)


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
    from monitor.pipeline.stages import stages

    started = utcnow()
    rows = 0
    for stage in stages():
        if only is not None and stage.name not in only:
            continue
        rows += run_unit(factory, _stage_runner(stage.name, project_id, window_start))
    run_unit(factory, lambda s: finish(s, project_id, window_start, started))
    return rows


def _stage_runner(name: str, project_id: int, window_start: datetime) -> Callable[[Session], int]:
    from monitor.pipeline.stages import run_stage

    return lambda session: run_stage(session, name, project_id, window_start)


def finish(session: Session, project_id: int, window_start: datetime, started: datetime) -> None:
    """Mark the window computed and tell the subscribers (in the same transaction: they queue after commit)."""
    finish_window(session, project_id, window_start, started)
    for hook in _after_window:
        hook(session, project_id, window_start)


def run_pending(
    now: datetime | None = None, *, factory: sessionmaker[Session] | None = None, project_ids: list[int] | None = None,
    progress: Callable[[WindowJob], None] | None = None, on_start: Callable[[int], None] | None = None,
) -> RunReport:
    """Scan, then compute every dirty window in this process (embedded mode's equivalent of beat + workers).
    `on_start` gets the number of windows found, before the first is computed; `progress` each one done."""
    factory = factory or session_factory()
    now = now or utcnow()
    jobs = run_unit(factory, lambda s: scan(s, now, project_ids))
    if on_start:
        on_start(len(jobs))
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
    for hook in _after_run:
        try:
            hook(factory, now)
        except Exception as exc:  # follow-up work is retried on the next run; the windows are done
            log.exception("after-run hook %s failed", getattr(hook, "__name__", hook))
            report.failures.append(f"after-run {getattr(hook, '__name__', hook)}: {exc}")
    return report


def tick(now: datetime | None = None, *, factory: sessionmaker[Session] | None = None) -> int:
    """One scheduler tick: in-process runs the work now; with Celery, sends one chain per window after commit."""
    settings = get_settings()
    if runs_inline(settings):
        return run_pending(now, factory=factory).windows
    factory = factory or session_factory()
    interval = timedelta(seconds=settings.recompute_interval_seconds)
    return len(run_unit(factory, lambda s: queue_windows(s, now or utcnow(), min_interval=interval)))


def queue_windows(session: Session, now: datetime, project_ids: list[int] | None = None, *,
                  min_interval: timedelta = timedelta(0)) -> list[WindowJob]:
    """Scan, and queue one chain of stage tasks per dirty window to start after this session commits (a task
    never sees an uncommitted window state)."""
    from monitor.pipeline.stages import stages

    jobs = scan(session, now, project_ids, min_interval=min_interval)
    for job in jobs:
        start = job.window_start.isoformat()
        steps = [Step(STAGE_TASK, (s.name, job.project_id, start), s.queue) for s in stages()]
        steps.append(Step(FINISH_TASK, (job.project_id, start, utcnow().isoformat())))
        enqueue_chain(session, steps)
    return jobs
