"""Real Redis + a real Celery worker process + Postgres: a scheduler tick turns events into metric rows, and
a worker SIGKILLed in the middle of a task (proven by its open transaction in pg_stat_activity) gets the task
back from the broker by itself, nothing re-sent, and leaves one correct row per key."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from celery.result import AsyncResult
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.demo.traffic import mixed
from monitor.ingest.service import ingest_events
from monitor.models import Event
from monitor.pipeline.models import EventVector, MetricValue, WindowState
from monitor.projects.service import get_or_create_project
from monitor.runner import process_window, tick
from monitor.schemas import EventIn
from tests.support.celery_env import celery_settings, kill_worker, start_worker
from tests.support.factories import unique_slug
from tests.support.pg_activity import open_write_transaction, with_application_name
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]
T0 = datetime(2026, 11, 21, 6, tzinfo=UTC)


@pytest.fixture
def celery_env(pg_url: str, redis_url: str, celery_key_prefix: str,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    with celery_settings(monkeypatch, pg_url, redis_url, celery_key_prefix,
                         extra={"DRIFTLOOP_CELERY_VISIBILITY_TIMEOUT": "5"}) as env:
        yield env


def _seed(engine: Engine, n: int) -> int:
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    with factory() as s:
        project = get_or_create_project(s, unique_slug())
        project.config = {"reference": {"kind": "first_n", "n": n // 2}, "drift_min_samples": 60,
                          "drift_fields": ["prompt", "response"]}
        texts = mixed({"account": 0.5, "billing": 0.5}, n // 2, seed=1) + mixed({"travel": 1.0}, n // 2, seed=2)
        ingest_events(s, project.id, [
            EventIn(event_id=f"e{i}", timestamp=T0 + timedelta(seconds=3 * i), prompt=t, response=f"Sure: {t}",
                    latency_ms=100.0 + i % 17) for i, t in enumerate(texts)
        ])
        s.commit()
        return project.id


def _snapshot(engine: Engine, pid: int) -> dict[tuple[str, str], tuple[float | None, float | None, str]]:
    with Session(engine) as s:
        rows = s.scalars(select(MetricValue).where(MetricValue.project_id == pid)).all()
        keys = [(r.metric, r.segment, r.window_start) for r in rows]
        assert len(keys) == len(set(keys)), "more than one row for a key"
        return {(r.metric, r.segment): (r.value, r.p_value, r.status) for r in rows}


def test_tick_dispatches_and_worker_writes_rows(celery_env: dict[str, str], pg_engine: Engine, tmp_path: Path) -> None:
    pid = _seed(pg_engine, 200)
    worker = start_worker(celery_env, tmp_path / "worker.log")
    try:
        factory = sessionmaker(bind=pg_engine, expire_on_commit=False)
        dispatched = tick(factory=factory)
        assert dispatched >= 1

        def finished() -> bool:
            with Session(pg_engine) as s:
                state = s.get(WindowState, (pid, T0))
                return state is not None and state.computed_at is not None and state.dirty_since is None

        wait_for(finished, 180, "the window chain to finish")
        snap = _snapshot(pg_engine, pid)
        assert snap[("ops.volume", "all")][0] == 200
        assert snap[("drift.prompt.mmd", "all")][2] == "ok"
    finally:
        kill_worker(worker)


def _same_row(a: tuple[float | None, float | None, str], b: tuple[float | None, float | None, str] | None) -> bool:
    """Equal status, and equal statistics up to float rounding: the worker and this process may sum in a
    different order (BLAS threads), which moves the last bits of an MMD statistic, nothing more."""
    return b is not None and a[2] == b[2] and all(
        x == y or (x is not None and y is not None and math.isclose(x, y, rel_tol=1e-9))
        for x, y in zip(a[:2], b[:2], strict=True))


def _committed(engine: Engine, pid: int) -> tuple[int, int]:
    """(metric rows, stored vectors) of the project, as committed."""
    with Session(engine) as s:
        rows = s.scalar(select(func.count()).select_from(MetricValue).where(MetricValue.project_id == pid))
        vectors = s.scalar(select(func.count()).select_from(EventVector).join(Event, Event.id == EventVector.event_id)
                           .where(Event.project_id == pid))
        return rows or 0, vectors or 0


def test_worker_killed_mid_task_is_redelivered_and_leaves_one_correct_row(
    celery_env: dict[str, str], pg_url: str, pg_engine: Engine, tmp_path: Path
) -> None:
    pid = _seed(pg_engine, 600)
    log = tmp_path / "worker.log"
    worker = start_worker({**celery_env, "DRIFTLOOP_DATABASE_URL": with_application_name(pg_url, "test-worker-a")},
                          log)
    from monitor.worker.tasks import run_stage_task

    result: AsyncResult = run_stage_task.apply_async(args=("drift", pid, T0.isoformat()), queue="gpu")
    try:
        # Mid-task, proven by the database: worker A's connection holds a transaction that has written vectors
        # and not committed (a task that had already finished would hold none).
        mid = wait_for(lambda: open_write_transaction(
            pg_url, "test-worker-a", "event_vectors", "drift_calibrations", "drift_cluster_events"), 180,
                       "worker A to be inside the drift stage with uncommitted rows")
    finally:
        kill_worker(worker)
    assert mid is not None and mid["xid"]
    assert _committed(pg_engine, pid) == (0, 0), "a killed task left a partial result"

    # Nothing is sent again: the unacknowledged message (late ack) must come back by itself once the
    # visibility timeout (5 s here) has passed, and worker B runs it.
    worker = start_worker(celery_env, log)
    try:
        wait_for(lambda: result.state == "SUCCESS", 240, "the killed task to be redelivered and finish on worker B")
        first = _snapshot(pg_engine, pid)
    finally:
        kill_worker(worker)
    assert first and _committed(pg_engine, pid)[0] == len(first)
    factory = sessionmaker(bind=pg_engine, expire_on_commit=False)
    process_window(pid, T0, factory=factory, only=["drift"])  # the same computation, clean, in this process
    again = _snapshot(pg_engine, pid)
    assert again.keys() == first.keys()
    assert [k for k in again if not _same_row(again[k], first[k])] == []
    assert first[("drift.prompt.mmd", "all")][1] is not None and first[("drift.prompt.mmd", "all")][1] <= 0.01
