"""`driftloop demo --production`: the same stages on the real PostgreSQL, Redis and a Celery worker the demo
starts (metrics, alert evaluation, webhook delivery and retraining all go through Celery), and its refusal
when those are not configured or do not answer."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from monitor.db import make_engine, session_factory
from monitor.demo.run import DemoConfigError, run_demo
from monitor.projects.service import get_project
from monitor.settings import reset_settings_cache
from retrain.models import ModelVersion, RetrainJob
from retrain.registry.service import aliases_of
from retrain.serving import lm_cache
from tests.support.torch_threads import one_torch_thread  # noqa: F401  (fixture)

# The bias probes at the gate's defaults (40 templates x 15 groups = 600 answers per model) would add ~8 minutes
# to the suite; the probe stage itself is tested in test_demo.py and tests/retrain with the same small set.
TEST_RETRAIN = {"lora": {"max_steps": 4}, "eval": {"max_examples": 4, "max_new_tokens": 12, "probe_templates": 10,
                                                    "probe_axes": ["gender"]}}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


@pytest.fixture
def demo_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    yield monkeypatch
    monkeypatch.undo()
    reset_settings_cache()


@pytest.mark.parametrize(("env", "says"), [
    ({"DRIFTLOOP_DATABASE_URL": "sqlite:///x.db"}, "DRIFTLOOP_DATABASE_URL to name a PostgreSQL database"),
    ({"DRIFTLOOP_DATABASE_URL": "postgresql+psycopg://postgres:pw@127.0.0.1:{port}/x"}, "does not answer"),
    ({"DRIFTLOOP_REDIS_URL": "redis://127.0.0.1:{port}/0"}, "DRIFTLOOP_REDIS_URL"),
])
def test_production_refuses_what_is_not_configured_or_not_reachable(
    tmp_path: Path, demo_env: pytest.MonkeyPatch, pg_url: str, redis_url: str, env: dict[str, str], says: str,
) -> None:
    demo_env.setenv("DRIFTLOOP_DATABASE_URL", pg_url)
    demo_env.setenv("DRIFTLOOP_REDIS_URL", redis_url)
    for k, v in env.items():
        demo_env.setenv(k, v.format(port=closed_port()))
    workdir = tmp_path / "demo"
    before = {k: v for k, v in os.environ.items() if k.startswith("DRIFTLOOP_")}
    with pytest.raises(DemoConfigError, match=says) as refused:
        run_demo(workdir, production=True)
    assert ":pw@" not in str(refused.value)  # a password in the URL is never printed
    assert not workdir.exists()  # refused before touching anything
    assert {k: v for k, v in os.environ.items() if k.startswith("DRIFTLOOP_")} == before


def test_cli_production_refusal_is_a_clear_error(tmp_path: Path, demo_env: pytest.MonkeyPatch) -> None:
    from monitor.cli import app

    demo_env.setenv("DRIFTLOOP_DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    result = CliRunner().invoke(app, ["demo", "--production", "--dir", str(tmp_path / "demo")])
    assert result.exit_code == 2
    assert "--production needs DRIFTLOOP_DATABASE_URL" in result.output


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.usefixtures("one_torch_thread")
def test_production_demo_runs_the_loop_through_celery(
    tmp_path: Path, demo_env: pytest.MonkeyPatch, pg_url: str, redis_url: str, celery_key_prefix: str,
) -> None:
    demo_env.setenv("DRIFTLOOP_DATABASE_URL", pg_url)
    demo_env.setenv("DRIFTLOOP_REDIS_URL", redis_url.rsplit("/", 1)[0] + "/7")
    demo_env.setenv("DRIFTLOOP_CELERY_KEY_PREFIX", celery_key_prefix)
    try:
        report = run_demo(tmp_path, events_per_window=100, retrain_overrides=TEST_RETRAIN, production=True)
        again = run_demo(tmp_path, events_per_window=100, quiet_windows=2, shifted_windows=1, production=True,
                         retrain_overrides={"min_examples": 10_000})  # re-running works: a project of its own
    finally:
        lm_cache.forget_all()
    assert report.ok, [(s.name, s.detail) for s in report.stages if not s.ok]
    assert report.mode == "production" and report.project.startswith("support-demo-")
    worker = report.outcome("Celery worker started (queues default,gpu)")
    assert worker is not None and celery_key_prefix in worker.detail
    assert report.outcome("metrics and drift (Celery workers)") is not None
    assert len(report.drift_windows) == 2 and report.values["alert_firing"] >= 1
    # Without --auto-approve the challenger waits for a person, and the demo says how to approve it.
    assert report.outcome("challenger awaits a person's approval") is not None
    assert f"driftloop models approve v1 -p {report.project}" in report.values["approve_command"]
    assert "promoted" not in report.values and report.values["served_before"]["model"] == "v0"
    assert {"alert.firing", "retrain.started", "retrain.finished"} <= set(report.values["webhook_types"])

    engine = make_engine(pg_url)
    try:
        with session_factory(engine)() as s:
            pid = get_project(s, report.project).id
            [job] = s.scalars(select(RetrainJob).where(RetrainJob.project_id == pid)).all()
            assert job.created_by.startswith("alert:") and job.status == "succeeded" and len(job.losses) == 4
            v1 = s.scalars(select(ModelVersion).where(ModelVersion.job_id == job.id)).one()
            assert v1.status == "candidate" and v1.eval_results["challenger"]["eval_nll"] is not None
            assert aliases_of(s, pid) == {"champion": "v0", "challenger": "v1"}
            # The second run is a project of its own: the first one's rows are untouched by it.
            assert again.project != report.project and get_project(s, again.project).id != pid
    finally:
        engine.dispose()
    # The second run's job could not find 10,000 examples: the demo reports the failed stage, and the worker
    # it started is stopped either way.
    failed = again.outcome("retraining started by the alert's retrain action")
    assert failed is not None and not failed.ok and "training examples" in failed.detail
    for run in (report, again):
        with pytest.raises(ProcessLookupError):
            os.kill(run.values["celery_worker_pid"], 0)
