"""Fault: a Celery worker is SIGKILLed in the middle of a metric task, and in the middle of a retraining job.

    python -m bench.faults.worker_kill [--quick] [--part metric|retrain|both]

Real parts: Postgres (a fresh database), Redis with this run's own key prefix, Celery workers as subprocesses
(`celery -A monitor.worker.app worker`, one process each, late acknowledgement as configured in production).

- metric: a window of events, a scheduler tick sends its chain; worker A is killed (whole process group,
  SIGKILL) while the database shows it inside the drift stage's transaction with rows written but not
  committed (`pg_stat_activity`: its connection holds a transaction id, its query on one of the drift stage's
  tables). Worker B is
  started; nothing is re-sent: the unacknowledged task must come back by itself (visibility timeout).
  Promises: no partial result at the kill, the window completes on B, one metric row per key, and the rows
  equal a clean in-process recomputation.
- retrain: a LoRA job on a tiny model built on the spot; worker C is killed once the job's committed progress
  shows training under way. Worker D gets the job back by itself. Promises: no version registered at the kill,
  the job succeeds on D (second attempt, training started over), exactly one version with a complete adapter.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker
from threadpoolctl import threadpool_limits

from bench.faults.common import Report, Timeout, celery_environment, fresh_database, machine, servers, worker_env
from monitor.db import make_engine
from monitor.pipeline.models import MetricValue, WindowState
from tests.support.celery_env import kill_worker, start_worker
from tests.support.pg_activity import open_write_transaction
from tests.support.waiting import wait_for
from tests.system.test_celery_worker import T0, _seed


def _metric_rows(engine: Engine, pid: int, prefix: str = "") -> list[tuple[str, str, datetime]]:
    with Session(engine) as s:
        stmt = select(MetricValue.metric, MetricValue.segment, MetricValue.window_start).where(
            MetricValue.project_id == pid, MetricValue.metric.like(f"{prefix}%"))
        return [(m, seg, w) for m, seg, w in s.execute(stmt)]


def _snapshot(engine: Engine, pid: int) -> dict[tuple[str, str], tuple[Any, ...]]:
    """Everything a drift row says, compared exactly: metric code runs with one BLAS thread, so a worker and this
    process write the same bits whatever their thread settings (monitor/drift/determinism.py)."""
    with Session(engine) as s:
        rows = s.scalars(select(MetricValue).where(MetricValue.project_id == pid, MetricValue.metric.like("drift.%")))
        return {(r.metric, r.segment): (r.value, r.p_value, r.threshold, r.flagged, r.status, r.n, r.details)
                for r in rows}

RECOMPUTE_THREADS = 2


def metric_task(report: Report, env: dict[str, str], db_url: str, events: int, logs: Path) -> None:
    from monitor.pipeline.models import EventVector
    from monitor.runner import process_window, tick

    engine = make_engine(db_url)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    pid = _seed(engine, events)
    report.did(f"seeded {events:,} events in window {T0:%Y-%m-%d %H:%M}Z (reference: the first half)")
    a = start_worker(worker_env(env, "fault-worker-a"), logs / "worker-a.log")
    b = None
    try:
        sent = tick(factory=factory)
        report.did(f"worker A (pid {a.pid}) up; a scheduler tick sent {sent} window chain(s)")
        mid = wait_for(lambda: open_write_transaction(
            db_url, "fault-worker-a", "event_vectors", "drift_calibrations", "drift_cluster_events"), 300,
                       "worker A to be inside the drift stage with uncommitted rows")
        kill_worker(a)
        killed_at = time.monotonic()
        report.did(f"SIGKILLed worker A mid-task: backend {mid['pid']} had transaction {mid['xid']} open for "
                   f"{mid['open_for'].total_seconds():.1f} s ({mid['state']}: {mid['query']!r})")
        with Session(engine) as s:
            vectors_at_kill = s.scalar(select(func.count()).select_from(EventVector))
        drift_at_kill = len(_metric_rows(engine, pid, "drift."))
        ops_at_kill = len(_metric_rows(engine, pid, "ops."))
        report.found(f"at the kill: drift rows {drift_at_kill}, stored vectors {vectors_at_kill}, ops rows "
                     f"{ops_at_kill} (the ops stage ran before drift and committed on its own)")
        b = start_worker(worker_env(env, "fault-worker-b"), logs / "worker-b.log")
        report.did(f"worker B (pid {b.pid}) up {time.monotonic() - killed_at:.1f} s after the kill; nothing re-sent")

        def finished() -> bool:
            with Session(engine) as s:
                state = s.get(WindowState, (pid, T0))
                return state is not None and state.computed_at is not None and state.dirty_since is None

        wait_for(finished, 600, "the window chain to finish on worker B")
        report.found(f"window finished {time.monotonic() - killed_at:.1f} s after the kill")
    finally:
        kill_worker(a)
        if b is not None:
            kill_worker(b)
    keys = _metric_rows(engine, pid)
    from_workers = _snapshot(engine, pid)
    # The same computation, clean, in this process, with more BLAS threads than the workers (OMP_NUM_THREADS=1)
    # on purpose: the rows must not depend on them.
    with threadpool_limits(limits=RECOMPUTE_THREADS, user_api="blas"):
        process_window(pid, T0, factory=factory, only=["drift"])
    again = _snapshot(engine, pid)
    engine.dispose()
    report.check(drift_at_kill == 0 and vectors_at_kill == 0, "a killed task leaves no partial result",
                 f"drift rows {drift_at_kill}, vectors {vectors_at_kill} committed at the kill")
    report.check(bool(from_workers), "the work completed on another worker, without a re-send",
                 f"{len(from_workers)} drift rows written after worker A died")
    report.check(len(keys) == len(set(keys)), "one metric row per key",
                 f"{len(keys)} rows, {len(set(keys))} distinct (metric, segment, window)")
    differing = [k for k in again if again[k] != from_workers.get(k)]
    report.check(not differing and len(again) == len(from_workers),
                 f"the rows equal a clean in-process recomputation ({RECOMPUTE_THREADS} BLAS threads, workers 1)",
                 f"{len(again)} drift rows compared, {len(differing)} differ"
                 + "".join(f"; {k}: workers {from_workers.get(k)} vs again {again[k]}" for k in differing))


def retrain_job(report: Report, env: dict[str, str], db_url: str, steps: int, logs: Path) -> None:
    from monitor.projects.service import get_or_create_project
    from retrain.jobs.service import create_job, dispatch
    from retrain.models import ModelVersion, RetrainJob
    from tests.support.retrain import seed_feedback

    engine = make_engine(db_url)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    with factory() as s:
        project = get_or_create_project(s, f"fault-retrain-{uuid.uuid4().hex[:6]}")
        seed_feedback(s, project.id, 20)
        job_id = create_job(s, project.id, created_by="fault script", params={"eval": {"similarity": False}}).id
        pid = project.id
        s.commit()

    def job() -> RetrainJob:
        with Session(engine) as s:
            row = s.get(RetrainJob, job_id)
            assert row is not None
            return row

    def versions() -> list[ModelVersion]:
        with Session(engine) as s:
            return list(s.scalars(select(ModelVersion).where(ModelVersion.project_id == pid,
                                                             ModelVersion.job_id.is_not(None))))

    c = start_worker(worker_env(env, "fault-worker-c"), logs / "worker-c.log")
    d = None
    try:
        dispatch(job_id)
        report.did(f"worker C (pid {c.pid}) up; retraining job {job_id} queued ({steps} LoRA steps on a tiny model)")
        wait_for(lambda: job().stage == "train" and len(job().losses) >= 3, 300, "training to be under way")
        kill_worker(c)
        killed_at = time.monotonic()
        at_kill = job()
        versions_at_kill = versions()
        report.did(f"SIGKILLed worker C in stage {at_kill.stage!r}, {len(at_kill.losses)} of {steps} steps "
                   f"committed as progress, attempt {at_kill.attempts}")
        d = start_worker(worker_env(env, "fault-worker-d"), logs / "worker-d.log")
        report.did(f"worker D (pid {d.pid}) up {time.monotonic() - killed_at:.1f} s after the kill; nothing re-sent")
        done = wait_for(lambda: job().status in ("succeeded", "failed") and job(), 900, "the job to finish on D")
        report.found(f"job {done.status} {time.monotonic() - killed_at:.1f} s after the kill: attempt "
                     f"{done.attempts}, {len(done.losses)} losses recorded, message {done.message!r}")
    finally:
        kill_worker(c)
        if d is not None:
            kill_worker(d)
    registered = versions()
    engine.dispose()
    complete = [v for v in registered if v.adapter_path and (Path(v.adapter_path) / "adapter_config.json").is_file()
                and any(Path(v.adapter_path).glob("adapter_model.*"))]
    report.check(at_kill.status == "running" and not versions_at_kill,
                 "no version registered while the job was killed", f"status {at_kill.status}, versions "
                 f"{len(versions_at_kill)}")
    report.check(done.status == "succeeded" and done.attempts == 2 and len(done.losses) == steps,
                 "the job completed on another worker, started over",
                 f"status {done.status}, attempts {done.attempts}, {len(done.losses)} of {steps} steps")
    report.check(len(registered) == 1 and complete == registered, "exactly one version, with a complete adapter",
                 f"{len(registered)} version(s) of the job, {len(complete)} with adapter config and weights")


def run(report: Report, part: str, events: int) -> None:
    report.did(f"machine: {machine()}")
    steps = 1500
    with servers() as (admin, redis_url), fresh_database(admin, "workers") as db_url, \
            tempfile.TemporaryDirectory(prefix="driftloop-fault-") as tmp:
        extra: dict[str, str] = {}
        if part in ("retrain", "both"):
            from tests.support.tiny_model import build_tiny_model_dir

            tiny = build_tiny_model_dir(Path(tmp) / "tiny-llama")
            extra = {"DRIFTLOOP_BASE_MODEL": str(tiny), "DRIFTLOOP_RETRAIN_MIN_EXAMPLES": "8",
                     "DRIFTLOOP_RETRAIN_MAX_STEPS": str(steps), "DRIFTLOOP_RETRAIN_BATCH_SIZE": "4",
                     "DRIFTLOOP_RETRAIN_EVAL_MAX_NEW_TOKENS": "4", "DRIFTLOOP_RETRAIN_PROBE_TEMPLATES": "1"}
        with celery_environment(db_url, redis_url, Path(tmp) / "data", extra) as env:
            report.did(f"Celery on {redis_url} with key prefix {env['DRIFTLOOP_CELERY_KEY_PREFIX']!r}, "
                       f"visibility timeout {env['DRIFTLOOP_CELERY_VISIBILITY_TIMEOUT']} s")
            if part in ("metric", "both"):
                metric_task(report, env, db_url, events, Path(tmp))
            if part in ("retrain", "both"):
                retrain_job(report, env, db_url, steps, Path(tmp))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a 600-event window (CI)")
    ap.add_argument("--part", choices=["metric", "retrain", "both"], default="both")
    ap.add_argument("--events", type=int, default=None, help="events 3 s apart in one window (default 1,200)")
    args = ap.parse_args(argv)
    report = Report("worker_kill")
    try:
        run(report, args.part, args.events or (600 if args.quick else 1_200))
    except Timeout as exc:
        report.fail(str(exc))
    return report.finish()


if __name__ == "__main__":
    raise SystemExit(main())
