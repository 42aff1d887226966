"""A real Celery worker SIGKILLed in the middle of LoRA training: the late-acknowledged task comes back to a
new worker, which starts the job over and registers exactly one version."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.projects.service import get_or_create_project
from retrain.jobs.service import create_job, dispatch
from retrain.models import ModelVersion, RetrainJob
from tests.support.celery_env import celery_settings, kill_worker, start_worker
from tests.support.factories import unique_slug
from tests.support.retrain import seed_feedback
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]


@pytest.fixture
def worker_env(pg_url: str, redis_url: str, celery_key_prefix: str, tiny_dir: Path, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    with celery_settings(monkeypatch, pg_url, redis_url, celery_key_prefix, redis_db=8, extra={
           "DRIFTLOOP_CELERY_VISIBILITY_TIMEOUT": "5", "DRIFTLOOP_BASE_MODEL": str(tiny_dir),
           "DRIFTLOOP_DATA_DIR": str(tmp_path / "data"), "DRIFTLOOP_DEVICE": "cpu",
           "DRIFTLOOP_RETRAIN_MIN_EXAMPLES": "8", "DRIFTLOOP_RETRAIN_MAX_STEPS": "1500",
           "DRIFTLOOP_RETRAIN_BATCH_SIZE": "4", "DRIFTLOOP_RETRAIN_EVAL_MAX_NEW_TOKENS": "4",
           "DRIFTLOOP_RETRAIN_PROBE_TEMPLATES": "1", "OMP_NUM_THREADS": "1"}) as env:
        yield env


def test_sigkill_during_training_then_redelivery_registers_once(
    worker_env: dict[str, str], pg_engine: Engine, tmp_path: Path,
) -> None:
    factory = sessionmaker(bind=pg_engine, expire_on_commit=False)
    with factory() as s:
        project = get_or_create_project(s, unique_slug("kill"))
        seed_feedback(s, project.id, 20)
        job_id = create_job(s, project.id, created_by="test", params={"eval": {"similarity": False}}).id
        s.commit()

    def job() -> RetrainJob:
        with Session(pg_engine) as s:
            row = s.get(RetrainJob, job_id)
            assert row is not None
            return row

    log = tmp_path / "worker.log"
    worker = start_worker(worker_env, log)
    dispatch(job_id)  # onto the gpu queue, after the commit above
    wait_for(lambda: job().stage == "train" and len(job().losses) >= 3, 120, "training to be under way")
    kill_worker(worker)
    killed = job()
    assert (killed.status, killed.stage, killed.attempts) == ("running", "train", 1), log.read_text()[-3000:]

    worker = start_worker(worker_env, log)  # no re-send: the unacknowledged task must come back by itself
    try:
        done = wait_for(lambda: job().status in ("succeeded", "failed") and job(), 300,
                        "the redelivered job to finish")
    finally:
        kill_worker(worker)
    assert done.status == "succeeded", done.message
    assert done.attempts == 2 and len(done.losses) == 1500
    with Session(pg_engine) as s:
        versions = s.scalar(select(func.count()).select_from(ModelVersion).where(ModelVersion.job_id == job_id))
        adapter = s.scalars(select(ModelVersion.adapter_path).where(ModelVersion.job_id == job_id)).one()
    assert versions == 1 and adapter is not None and (Path(adapter) / "adapter_config.json").is_file()
