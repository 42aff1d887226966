"""A firing alert rule with a `retrain` action starts exactly one job per firing, which runs (embedded mode:
right after the firing commits) to a registered challenger that records the alert as its trigger."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerts.actions import handler_for
from monitor.alerts.models import AlertActionRequest
from monitor.llm import LoadedLM
from monitor.models import Project
from monitor.settings import Settings
from retrain.jobs.alerting import handle_retrain_action
from retrain.models import RetrainJob
from retrain.registry.service import get_version
from retrain.serving import lm_cache
from tests.support.metric_windows import finish
from tests.support.retrain import fire_retrain_alert, seed_feedback


def test_firing_alert_runs_one_job_to_a_registered_challenger(
    session: Session, session_maker: sessionmaker[Session], project: Project, tiny: LoadedLM, tiny_dir: Path,
    retrain_handler: None, process_settings: Callable[..., Settings],
) -> None:
    settings = process_settings(DRIFTLOOP_BASE_MODEL=str(tiny_dir), DRIFTLOOP_RETRAIN_MIN_EXAMPLES="8",
                                DRIFTLOOP_RETRAIN_MAX_STEPS="2", DRIFTLOOP_RETRAIN_BATCH_SIZE="4",
                                DRIFTLOOP_RETRAIN_EVAL_MAX_NEW_TOKENS="4", DRIFTLOOP_RETRAIN_PROBE_TEMPLATES="1")
    lm_cache.provide(str(tiny_dir), settings, tiny)
    assert handler_for("retrain") is handle_retrain_action
    seed_feedback(session, project.id, 20)
    session.commit()

    fire_retrain_alert(session, session_maker, project.id, {"eval": {"similarity": False}})

    session.expire_all()
    [request] = session.scalars(select(AlertActionRequest).where(AlertActionRequest.project_id == project.id)).all()
    [job] = session.scalars(select(RetrainJob).where(RetrainJob.project_id == project.id)).all()
    assert request.status == "done" and request.result == {"job_id": job.id}
    assert job.action_request_id == request.id and job.created_by == f"alert:{request.alert_id}"
    assert job.status == "succeeded", job.message
    assert job.params == {"eval": {"similarity": False}}
    challenger = get_version(session, project.id, "challenger")
    assert challenger.job_id == job.id and challenger.created_by == job.created_by
    trigger = challenger.trigger
    assert (trigger["kind"], trigger["rule"], trigger["metric"], trigger["observed"]) == (
        "alert", "prompt-drift", "drift.prompt.mmd", 0.001)
    assert trigger["evidence"][0]["p_value"] == 0.001

    # Evaluating the same window again (a re-delivered task) neither asks again nor trains again.
    finish(session_maker, project.id, 0)
    session.expire_all()
    assert len(session.scalars(select(RetrainJob).where(RetrainJob.project_id == project.id)).all()) == 1


def test_one_job_per_action_request(session: Session, project: Project, settings: Settings) -> None:
    from retrain.jobs.service import create_job

    first = create_job(session, project.id, created_by="alert:1", action_request_id=424242, settings=settings)
    again = create_job(session, project.id, created_by="alert:1", action_request_id=424242, settings=settings)
    other = create_job(session, project.id, created_by="alert:2", action_request_id=424243, settings=settings)
    assert first.id == again.id != other.id
    assert len(session.scalars(select(RetrainJob).where(RetrainJob.project_id == project.id)).all()) == 2


def test_kill_switch_leaves_retrain_requests_unhandled() -> None:
    from retrain.jobs.alerting import install, uninstall

    uninstall()
    assert install(Settings(retrain_on_alert=False)) is False
    assert handler_for("retrain") is None
    assert install(Settings()) is True and handler_for("retrain") is handle_retrain_action
    uninstall()
    assert handler_for("retrain") is None
