"""Issue #18, finding 7: `POST /v1/retrain` never trains in the request; embedded mode runs jobs one at a time on
the serial runner; a project has at most one queued/running job (a second request gets 409 naming it, even when
the requests race); abandoned jobs time out; two jobs writing the same dataset never share a temp file."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session, sessionmaker

from monitor import composition
from monitor.db import utcnow
from monitor.models import Project
from monitor.queue import serial_runner, set_inline_tasks
from monitor.settings import Settings
from retrain.dataset.builder import DatasetSnapshot, Example
from retrain.jobs.service import TASK_NAME, JobConflict, create_job, update_job
from retrain.models import RetrainJob
from tests.support.factories import make_key, unique_slug


class Gate:
    """An inline `run_job` stand-in that waits to be released, recording where and how many at once it ran."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.lock = threading.Lock()
        self.running = 0
        self.max_running = 0
        self.threads: list[str] = []
        self.ran: list[int] = []

    def __call__(self, factory: sessionmaker[Session], settings: Settings, job_id: int) -> None:
        with self.lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            self.threads.append(threading.current_thread().name)
        self.started.set()
        assert self.release.wait(60), "the test never released the gate"
        update_job(factory, job_id, status="succeeded", stage="done", progress=1.0)
        with self.lock:
            self.running -= 1
            self.ran.append(job_id)


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate()
    set_inline_tasks({TASK_NAME: g})
    try:
        yield g
    finally:
        g.release.set()
        serial_runner("gpu").join()
        composition.wire()  # the real table back


def _key(session: Session) -> dict[str, str]:
    created = make_key(session)
    session.commit()
    return {"Authorization": f"Bearer {created.key}"}


def test_jobs_run_on_the_serial_runner_one_at_a_time_with_409_per_project(
    client: TestClient, session: Session, gate: Gate
) -> None:
    a, b = _key(session), _key(session)
    first = client.post("/v1/retrain", headers=a, json={"actor": "ann"})
    assert first.status_code == 202 and first.json()["status"] == "queued"  # answered while the job waits
    assert gate.started.wait(30)
    second = client.post("/v1/retrain", headers=a, json={"actor": "ann"})
    assert second.status_code == 409, second.text
    assert second.json()["job_id"] == first.json()["id"] and str(first.json()["id"]) in second.json()["detail"]
    other = client.post("/v1/retrain", headers=b, json={"actor": "bob"})  # another project: queued behind
    assert other.status_code == 202
    gate.release.set()
    serial_runner("gpu").join()
    assert gate.ran == [first.json()["id"], other.json()["id"]]
    assert gate.max_running == 1 and set(gate.threads) == {"driftloop-gpu"}
    # Once the first is done, the project may start the next one.
    third = client.post("/v1/retrain", headers=a, json={"actor": "ann"})
    assert third.status_code == 202
    serial_runner("gpu").join()


def test_an_abandoned_job_times_out_and_no_longer_blocks(
    client: TestClient, session: Session, session_maker: sessionmaker[Session], settings: Settings, gate: Gate
) -> None:
    auth = _key(session)
    pid = session.scalars(select(Project.id).order_by(Project.id.desc())).first()
    assert pid is not None
    job = create_job(session, pid, created_by="dead-worker", settings=settings, exclusive=True)
    session.commit()
    update_job(session_maker, job.id, status="running")
    r = client.post("/v1/retrain", headers=auth, json={"actor": "ann"})
    assert r.status_code == 409 and r.json()["job_id"] == job.id  # still within the timeout
    stale = utcnow() - timedelta(seconds=settings.retrain_job_timeout_seconds + 1)
    update_job(session_maker, job.id)  # (the helper stamps updated_at; set it back below)
    with session_maker() as s:
        row = s.get(RetrainJob, job.id)
        assert row is not None
        row.updated_at = stale
        s.commit()
    gate.release.set()
    r = client.post("/v1/retrain", headers=auth, json={"actor": "ann"})
    assert r.status_code == 202, r.text
    serial_runner("gpu").join()
    session.expire_all()
    dead = session.get(RetrainJob, job.id)
    assert dead is not None and dead.status == "failed" and "abandoned" in (dead.message or "")


def _race(engine: Engine, project_id: int, n: int) -> list[Any]:
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def one(i: int) -> None:
        with factory() as s:
            barrier.wait()
            try:
                results[i] = create_job(s, project_id, created_by=f"racer-{i}", exclusive=True,
                                        settings=Settings(database_url=str(engine.url))).id
                s.commit()
            except JobConflict as exc:
                s.rollback()
                results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


@pytest.mark.parametrize("engine_name", ["pg_engine", "sqlite_engine"])
def test_racing_requests_create_exactly_one_job(request: pytest.FixtureRequest, engine_name: str) -> None:
    engine: Engine = request.getfixturevalue(engine_name)
    with Session(engine) as s:
        created = make_key(s, unique_slug("race"))
        s.commit()
        pid = s.scalars(select(Project.id).where(Project.slug == created.project_slug)).one()
    try:
        results = _race(engine, pid, 6)
        ids = [r for r in results if isinstance(r, int)]
        conflicts = [r for r in results if isinstance(r, JobConflict)]
        assert len(ids) == 1 and len(conflicts) == 5, results
        assert {c.job_id for c in conflicts} == set(ids)
    finally:
        with Session(engine) as s:
            s.execute(delete(RetrainJob).where(RetrainJob.project_id == pid))
            s.execute(delete(Project).where(Project.id == pid))
            s.commit()


def test_two_writers_of_one_snapshot_never_share_a_temp_file(tmp_path: Path) -> None:
    snapshot = DatasetSnapshot(train=(Example("p", "r", "positive", "e1"),), eval=(), content_hash="h")
    path = tmp_path / "datasets" / "h.jsonl"
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def write() -> None:
        barrier.wait()
        try:
            for _ in range(25):
                snapshot.write(path)
        except BaseException as exc:  # a shared temp name fails here (FileNotFoundError on rename)
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert path.read_text(encoding="utf-8") == snapshot.jsonl()
    assert [p.name for p in path.parent.iterdir()] == ["h.jsonl"]  # no temp files left behind
