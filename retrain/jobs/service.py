"""Retraining job rows: creation (idempotent per alert action request), progress, queueing, reading.

Queue after commit, pass ids: a job is dispatched through the queue seam (`monitor.queue`) only once the row
that describes it is committed — to Celery's `gpu` queue, or, in embedded mode, run right there in the calling
process (`retrain.jobs.pipeline.run_job`, the same function the Celery task calls).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerts.evaluation import alert_payload
from monitor.alerts.models import Alert, AlertRule, AlertTransition
from monitor.db import utcnow
from monitor.encoding import iso
from monitor.errors import ConflictError, NotFoundError
from monitor.models import Project
from monitor.pipeline.models import MetricValue
from monitor.queue import dispatch as queue_dispatch
from monitor.queue import enqueue
from monitor.queue import submit as queue_submit
from monitor.settings import Settings, get_settings
from retrain.jobs.base_models import check_base_model
from retrain.jobs.config import effective_config
from retrain.models import RetrainJob
from retrain.public_paths import scrub, scrub_text

log = logging.getLogger(__name__)
STAGES = ("queued", "dataset", "train", "evaluate", "register", "done")
# Share of the whole run each stage ends at; the training stage moves with its steps in between.
STAGE_END = {"queued": 0.0, "dataset": 0.05, "train": 0.7, "evaluate": 0.95, "register": 1.0, "done": 1.0}
QUEUE = "gpu"
TASK_NAME = "driftloop.retrain.run_job"


ACTIVE = ("queued", "running")


class JobConflict(ConflictError):
    """The project already has a queued or running job (`job_id`): one at a time per project."""

    def __init__(self, job: RetrainJob):
        super().__init__(f"project already has retraining job {job.id} ({job.status}); wait for it to finish "
                         f"(GET /v1/retrain/jobs/{job.id}) before starting another")
        self.job_id = int(job.id)
        self.status = job.status


def _lock_project(session: Session, project_id: int) -> None:
    # A no-op write on the project's row: on Postgres it takes the row's lock, on SQLite the database's write lock.
    # Either way a second request for the same project waits here until the first commits, then sees its job:
    # check-then-insert is atomic without a schema change.
    session.execute(update(Project).where(Project.id == project_id).values(id=Project.id))


def active_job(session: Session, project_id: int) -> RetrainJob | None:
    return session.scalars(select(RetrainJob).where(RetrainJob.project_id == project_id,
                                                    RetrainJob.status.in_(ACTIVE)).order_by(RetrainJob.id)).first()


def fail_abandoned(session: Session, project_id: int | None, settings: Settings,
                   now: datetime | None = None) -> list[int]:
    """Mark failed the queued/running jobs that made no progress for `DRIFTLOOP_RETRAIN_JOB_TIMEOUT_SECONDS`: the
    process running (or holding) them died. A live job writes progress every few seconds (and queued jobs wait
    behind at most one job per project), so silence that long means nobody will finish it. Returns their ids."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=settings.retrain_job_timeout_seconds)
    stmt = select(RetrainJob).where(RetrainJob.status.in_(ACTIVE), RetrainJob.updated_at < cutoff)
    if project_id is not None:
        stmt = stmt.where(RetrainJob.project_id == project_id)
    failed = []
    for job in session.scalars(stmt):
        job.message = (f"{job.stage}: abandoned: no progress for more than {settings.retrain_job_timeout_seconds:g} s "
                       f"while {job.status} (the process running it stopped); start a new job")
        job.status, job.finished_at, job.updated_at = "failed", now, now
        failed.append(int(job.id))
    if failed:
        log.warning("marked abandoned retraining jobs failed: %s", failed)
    return failed


def create_job(session: Session, project_id: int, *, created_by: str, trigger: dict[str, Any] | None = None,
               params: dict[str, Any] | None = None, action_request_id: int | None = None,
               settings: Settings | None = None, exclusive: bool = False) -> RetrainJob:
    """A queued job; for an alert action request, the one job of that request (created once).

    `exclusive` (manual requests: the API, the CLI): refused with `JobConflict` while the project has a queued or
    running job, abandoned ones (see `fail_abandoned`) excepted."""
    if action_request_id is not None:
        existing = job_for_action(session, action_request_id)
        if existing is not None:
            return existing
    project = session.get(Project, project_id)
    if project is None:
        raise NotFoundError(f"no project with id {project_id}")
    settings = settings or get_settings()
    if exclusive:
        _lock_project(session, project_id)
        fail_abandoned(session, project_id, settings)
        running = active_job(session, project_id)
        if running is not None:
            raise JobConflict(running)
    cfg = effective_config(settings, project.config, params)  # refuse bad params now, not mid-run
    check_base_model(session, project_id, cfg.base_model, settings)  # only allowed models (base_models.py)
    now = utcnow()
    job = RetrainJob(project_id=project_id, status="queued", stage="queued", progress=0.0, losses=[],
                     trigger=trigger or {}, params=params or {}, action_request_id=action_request_id,
                     results={}, attempts=0, created_by=created_by, created_at=now, updated_at=now)
    try:
        with session.begin_nested():
            session.add(job)
            session.flush()
    except IntegrityError:  # the same request handled twice at once: keep the first job
        if action_request_id is None:
            raise
        existing = job_for_action(session, action_request_id)
        if existing is None:
            raise
        return existing
    return job


def job_for_action(session: Session, action_request_id: int) -> RetrainJob | None:
    return session.scalars(select(RetrainJob).where(RetrainJob.action_request_id == action_request_id)).first()


def trigger_from_alert(session: Session, request: Any) -> dict[str, Any]:
    """What the version will record as its trigger: the alert, the rule, the values and any drift explanation."""
    trigger: dict[str, Any] = {"kind": "alert", "action_request_id": int(request.id),
                               "alert_id": int(request.alert_id), "params": dict(request.params or {})}
    alert = session.get(Alert, request.alert_id)
    transition = session.get(AlertTransition, request.transition_id)
    rule = session.get(AlertRule, alert.rule_id) if alert is not None else None
    project = session.get(Project, request.project_id)
    if alert is None or transition is None or rule is None or project is None:
        return trigger
    payload = alert_payload(project, rule, alert, transition)
    trigger.update(rule=payload["alert"]["rule"], metric=rule.metric, segment=alert.segment,
                   observed=payload["observed"], condition=payload["condition"], window_start=payload["window_start"],
                   evidence=payload["evidence"])
    row = session.scalars(select(MetricValue).where(
        MetricValue.project_id == request.project_id, MetricValue.metric == rule.metric,
        MetricValue.segment == alert.segment, MetricValue.window_start == transition.window_start)).first()
    if row is not None and isinstance(row.details, dict) and row.details.get("explanation"):
        trigger["drift_explanation"] = row.details["explanation"]
    return trigger


def update_job(factory: sessionmaker[Session], job_id: int, **fields: Any) -> None:
    """Write progress in a transaction of its own, so it is visible while the job still runs."""
    with factory() as session:
        job = session.get(RetrainJob, job_id)
        if job is None:
            return
        for name, value in fields.items():
            setattr(job, name, value)
        job.updated_at = utcnow()
        session.commit()


def get_job(session: Session, project_id: int, job_id: int) -> RetrainJob:
    job = session.get(RetrainJob, job_id)
    if job is None or job.project_id != project_id:  # another project's job is as good as missing
        raise NotFoundError(f"no retraining job {job_id} in this project")
    return job


def list_jobs(session: Session, project_id: int, *, limit: int = 50) -> list[RetrainJob]:
    stmt = (select(RetrainJob).where(RetrainJob.project_id == project_id)
            .order_by(RetrainJob.id.desc()).limit(limit))
    return list(session.scalars(stmt))


def job_dict(job: RetrainJob, settings: Settings | None = None) -> dict[str, Any]:
    """A job as clients see it: server paths in its message and results relative to their root."""
    return {"id": job.id, "status": job.status, "stage": job.stage, "progress": job.progress,
            "losses": job.losses, "message": scrub_text(job.message, settings), "trigger": job.trigger,
            "params": job.params, "action_request_id": job.action_request_id, "version_id": job.version_id,
            "results": scrub(job.results, settings),
            "attempts": job.attempts, "created_by": job.created_by, "created_at": iso(job.created_at),
            "started_at": iso(job.started_at), "finished_at": iso(job.finished_at),
            "updated_at": iso(job.updated_at)}


def dispatch(job_id: int, *, settings: Settings | None = None,
             factory: sessionmaker[Session] | None = None) -> None:
    """Start a committed job: Celery's `gpu` queue, or (embedded mode) run it now in this process."""
    queue_dispatch(TASK_NAME, job_id, settings=settings, factory=factory, queue=QUEUE)


def submit(job_id: int, *, settings: Settings | None = None, factory: sessionmaker[Session] | None = None) -> None:
    """Start a committed job in the background and return: Celery's `gpu` queue, or (embedded mode) this
    process's serial runner, which trains one job at a time. What request handlers call."""
    queue_submit(TASK_NAME, job_id, settings=settings, factory=factory, queue=QUEUE)


def dispatch_after_commit(session: Session, job_id: int, *, settings: Settings | None = None) -> None:
    enqueue(session, TASK_NAME, job_id, settings=settings, queue=QUEUE)
