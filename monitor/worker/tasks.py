"""Thin Celery tasks: ids in, one service call, idempotent (metric rows are upserted by their unique key).

The worker's processes are wired here, by the composition root (`monitor.composition`): the runner's
subscribers, the queue seam's table and the `retrain` action handler (a rule evaluated in a worker must find it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from celery.signals import worker_process_init, worker_ready

from monitor import composition
from monitor.db import run_unit, session_factory, utcnow
from monitor.pipeline.stages import run_stage
from monitor.runner import FINISH_TASK, STAGE_TASK, finish, process_window, tick
from monitor.worker.app import celery_app


@worker_ready.connect
@worker_process_init.connect
def _wire_worker(**_: Any) -> None:
    composition.wire()
    composition.install_action_handlers()


@celery_app.task(name="driftloop.tick")
def tick_task() -> int:
    return tick()


@celery_app.task(name=STAGE_TASK)
def run_stage_task(stage: str, project_id: int, window_start: str) -> int:
    start = datetime.fromisoformat(window_start)
    return run_unit(session_factory(), lambda s: run_stage(s, stage, project_id, start))


@celery_app.task(name=FINISH_TASK)
def finish_window_task(project_id: int, window_start: str, started_at: str) -> None:
    start, started = datetime.fromisoformat(window_start), datetime.fromisoformat(started_at)
    run_unit(session_factory(), lambda s: finish(s, project_id, start, started))


@celery_app.task(name="driftloop.process_window")
def process_window_task(project_id: int, window_start: str) -> int:
    """All stages in one worker (used when a deployment has no separate gpu queue)."""
    return process_window(project_id, datetime.fromisoformat(window_start))


@celery_app.task(name="driftloop.schedule_probes")
def schedule_probes_task() -> int:
    """Hourly: queue a probe run (gpu queue) for every project whose schedule is due."""
    from monitor.safety.probe_job import due_probe_projects

    due = run_unit(session_factory(), lambda s: due_probe_projects(s, utcnow()))
    for pid in due:
        run_probes_task.apply_async(args=(pid,), queue="gpu")
    return len(due)


@celery_app.task(name="driftloop.run_probes")
def run_probes_task(project_id: int) -> int:
    from monitor.safety.probe_job import run_scheduled_probe
    from monitor.settings import get_settings

    return run_unit(session_factory(), lambda s: run_scheduled_probe(s, project_id, get_settings().data_dir / "probes"))


@celery_app.task(name="driftloop.partitions")
def partitions_task() -> dict[str, object]:
    """Create time partitions ahead and move rows out of DEFAULT (a no-op unless storage is partitioned)."""
    from monitor.partitions.service import upkeep
    from monitor.settings import get_settings

    settings = get_settings()
    done = run_unit(session_factory(), lambda s: upkeep(s, utcnow(), settings.partition_interval,
                                                        settings.partition_ahead_days))
    return {"created": done.created, "moved_from_default": done.moved_from_default}


@celery_app.task(name="driftloop.search_index")
def search_index_task() -> dict[str, object]:
    """Write the full-text search rows of events past the indexer's watermark (a no-op on SQLite)."""
    from monitor.events.indexing import index_pending

    done = index_pending(session_factory())
    return {"rows": done.rows, "indexed_through": done.indexed_through}


@celery_app.task(name="driftloop.retention")
def retention_task() -> dict[str, object]:
    """Delete events and feedback past DRIFTLOOP_RETENTION_DAYS, in short batches (a no-op when unset)."""
    from monitor.retention.service import apply_retention
    from monitor.settings import get_settings

    settings = get_settings()
    if not settings.retention_days:
        return {"retention": "off"}
    report = apply_retention(session_factory(), days=settings.retention_days,
                             batch_size=settings.retention_batch_size)
    return report.as_dict()
