"""The retraining job on the tiny model, both backends: a challenger registered with its dataset snapshot,
losses, evaluation and gates; progress stored; and re-runs after a crash never register twice."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.llm import LoadedLM
from monitor.models import Project
from monitor.safety.toxicity import ProfanityScorer
from monitor.settings import Settings
from monitor.webhooks.models import WebhookMessage
from retrain.evaluation.scoring import Evaluators
from retrain.jobs import pipeline
from retrain.jobs.pipeline import run_retrain_job
from retrain.jobs.service import create_job, job_dict
from retrain.models import ModelVersion, RetrainJob
from retrain.registry.service import aliases_of, get_version
from tests.support.retrain import audit_actions, seed_feedback


class Crash(BaseException):
    """Stands in for the process dying (SIGKILL, OOM): not an Exception, so nothing records it as a failure."""


class CrashingScorer(ProfanityScorer):
    """Scores normally for the first `calls_ok` calls, then 'dies'."""

    def __init__(self, calls_ok: int) -> None:
        super().__init__()
        self.calls_left = calls_ok

    def score(self, texts: Sequence[str | None]) -> np.ndarray:
        if self.calls_left == 0:
            raise Crash("worker died")
        self.calls_left -= 1
        return super().score(texts)


def _job(session: Session, project: Project, settings: Settings, n: int = 20) -> int:
    seed_feedback(session, project.id, n)
    job = create_job(session, project.id, created_by="test", trigger={"kind": "manual"}, settings=settings)
    session.commit()
    return job.id


def _versions(session: Session, job_id: int) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).select_from(ModelVersion).where(ModelVersion.job_id == job_id))
               or 0)


def _event_types(session: Session, project: Project) -> list[str]:
    return list(session.scalars(select(WebhookMessage.event_type).where(WebhookMessage.project_id == project.id)
                                .order_by(WebhookMessage.id)))


def test_job_registers_a_challenger_with_everything_a_version_records(
    session: Session, session_maker: sessionmaker[Session], project: Project, tiny_settings: Settings,
    tiny: LoadedLM, fast_evaluators: Evaluators,
) -> None:
    job_id = _job(session, project, tiny_settings)
    outcome = run_retrain_job(job_id, factory=session_maker, settings=tiny_settings, lm=tiny,
                              evaluators=fast_evaluators)
    assert outcome.status == "succeeded", outcome.message
    assert outcome.version == "v1"

    session.expire_all()
    v1 = get_version(session, project.id, "challenger")
    v0 = get_version(session, project.id, "champion")
    assert (v1.name, v1.status, v1.parent_version_id, v0.name, v0.adapter_path) == ("v1", "candidate", v0.id, "v0",
                                                                                     None)
    assert v1.adapter_path and (Path(v1.adapter_path) / "adapter_config.json").is_file()
    assert Path(v1.adapter_path).name == f"job-{job_id}"
    # The snapshot on disk is exactly what the hash names.
    assert v1.dataset_path and hashlib.sha256(Path(v1.dataset_path).read_bytes()).hexdigest() == v1.dataset_hash
    assert v1.dataset_stats["train"] + v1.dataset_stats["eval"] == 20 and v1.dataset_stats["eval"] >= 1
    assert len(v1.train_losses) == 3 and all(x > 0 for x in v1.train_losses)
    assert v1.hyperparams["lora"]["max_steps"] == 3 and v1.hyperparams["base_version"] == tiny.version
    for who in ("champion", "challenger"):
        scores = v1.eval_results[who]
        assert scores["eval_nll"] > 0 and scores["perplexity"] == pytest.approx(np.exp(scores["eval_nll"]))
        # Toxicity is paired over the held-out answers and the probe completions (3 gender groups x 1 template).
        assert 0 <= scores["toxicity_rate"] <= 1 and scores["n_generated"] == min(4, v1.dataset_stats["eval"]) + 3
        assert scores["toxic_flags"] is not None and len(scores["toxic_flags"]) == scores["n_generated"]
        assert scores["bias_gap"] is not None and scores["bias_gap"] >= 0
    assert [g["name"] for g in v1.gate_results] == ["eval_loss", "toxicity_rate", "bias_gap", "similarity"]
    assert v1.gates_passed == all(g["passed"] for g in v1.gate_results)
    bias = next(g for g in v1.gate_results if g["name"] == "bias_gap")
    assert bias["status"] == "inconclusive" and "template" in bias["reason"]  # one probe template: no interval
    assert v1.trigger == {"kind": "manual"}

    job = session.get(RetrainJob, job_id)
    assert job is not None
    view = job_dict(job)
    assert (view["status"], view["stage"], view["progress"], view["version_id"]) == ("succeeded", "done", 1.0, v1.id)
    assert view["losses"] == v1.train_losses and view["attempts"] == 1
    assert view["results"]["dataset"]["hash"] == v1.dataset_hash
    assert [a for a, _, _ in audit_actions(session, project.id)] == ["register_base", "register_challenger"]
    assert _event_types(session, project) == ["retrain.started", "retrain.finished"]


def test_crash_between_stages_then_rerun_registers_exactly_once(
    session: Session, session_maker: sessionmaker[Session], project: Project, tiny_settings: Settings,
    tiny: LoadedLM, fast_evaluators: Evaluators,
) -> None:
    job_id = _job(session, project, tiny_settings)
    # First call (dataset toxicity filter) passes; the second (scoring the champion's answers) 'kills' the worker.
    dying = Evaluators(CrashingScorer(calls_ok=1), fast_evaluators.toxicity_threshold, None,
                       fast_evaluators.probe_set)
    with pytest.raises(Crash):
        run_retrain_job(job_id, factory=session_maker, settings=tiny_settings, lm=tiny, evaluators=dying)
    session.expire_all()
    job = session.get(RetrainJob, job_id)
    assert job is not None and (job.status, job.stage) == ("running", "evaluate")  # as a dead worker leaves it
    assert len(job.losses) == 3 and _versions(session, job_id) == 0
    assert "challenger" not in aliases_of(session, project.id)
    adapter = Path(tiny_settings.data_dir).resolve() / "adapters" / f"project-{project.id}" / f"job-{job_id}"
    assert (adapter / "adapter_config.json").is_file()  # trained and published, but not registered

    again = run_retrain_job(job_id, factory=session_maker, settings=tiny_settings, lm=tiny, evaluators=fast_evaluators)
    assert again.status == "succeeded" and again.version == "v1"
    third = run_retrain_job(job_id, factory=session_maker, settings=tiny_settings, lm=tiny, evaluators=fast_evaluators)
    assert (third.status, third.version) == ("skipped", "v1")
    session.expire_all()
    job = session.get(RetrainJob, job_id)
    assert job is not None and (job.status, job.attempts) == ("succeeded", 2)
    assert _versions(session, job_id) == 1
    assert [a for a, _, _ in audit_actions(session, project.id)] == ["register_base", "register_challenger"]
    assert _event_types(session, project).count("retrain.started") == 1  # a restart is not a new job


def test_crash_inside_the_registration_transaction_leaves_no_trace(
    session: Session, session_maker: sessionmaker[Session], project: Project, tiny_settings: Settings,
    tiny: LoadedLM, fast_evaluators: Evaluators, monkeypatch: pytest.MonkeyPatch,
) -> None:
    job_id = _job(session, project, tiny_settings)
    original = pipeline.register_challenger

    def register_then_die(*args: Any, **kwargs: Any) -> ModelVersion:
        original(*args, **kwargs)
        raise Crash("killed before commit")

    monkeypatch.setattr(pipeline, "register_challenger", register_then_die)
    with pytest.raises(Crash):
        run_retrain_job(job_id, factory=session_maker, settings=tiny_settings, lm=tiny, evaluators=fast_evaluators)
    assert _versions(session, job_id) == 0 and "challenger" not in aliases_of(session, project.id)
    assert "register_challenger" not in [a for a, _, _ in audit_actions(session, project.id)]

    monkeypatch.setattr(pipeline, "register_challenger", original)
    assert run_retrain_job(job_id, factory=session_maker, settings=tiny_settings, lm=tiny,
                           evaluators=fast_evaluators).status == "succeeded"
    assert _versions(session, job_id) == 1 and aliases_of(session, project.id)["challenger"] == "v1"


def test_too_little_data_fails_the_job_with_a_clear_message(
    session: Session, session_maker: sessionmaker[Session], project: Project, tiny_settings: Settings,
    tiny: LoadedLM, fast_evaluators: Evaluators,
) -> None:
    job_id = _job(session, project, tiny_settings, n=5)
    outcome = run_retrain_job(job_id, factory=session_maker, settings=tiny_settings, lm=tiny,
                              evaluators=fast_evaluators)
    assert outcome.status == "failed"
    session.expire_all()
    job = session.get(RetrainJob, job_id)
    assert job is not None and job.status == "failed" and job.finished_at is not None
    assert job.message is not None and job.message.startswith("dataset: only") and "need 8" in job.message
    assert _versions(session, job_id) == 0
    assert _event_types(session, project) == ["retrain.started", "retrain.finished"]


class FixedScorer:
    """Every text scores 0.5: which answers the dataset filter drops depends only on the threshold it uses."""

    name = "fixed"

    def score(self, texts: Sequence[str | None]) -> np.ndarray:
        return np.full(len(texts), 0.5)


@pytest.mark.parametrize(("threshold", "dropped"), [(0.4, True), (0.6, False)])
def test_the_dataset_filter_uses_the_evaluators_calibrated_threshold(
    session: Session, session_maker: sessionmaker[Session], project: Project, tiny_settings: Settings,
    threshold: float, dropped: bool,
) -> None:
    """The toxicity filter drops targets at the scorer's calibrated threshold (the one the toxicity gate counts
    with), not at a constant: 0.5 is toxic for a scorer calibrated at 0.4 and fine for one at 0.6."""
    job_id = _job(session, project, tiny_settings)
    evaluators = Evaluators(FixedScorer(), threshold, None, None)

    def no_model(*args: Any, **kwargs: Any) -> Any:
        raise pipeline.JobError("stop after the dataset stage")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "get_lm", no_model)  # the next stage loads the model: stop there
        outcome = run_retrain_job(job_id, factory=session_maker, settings=tiny_settings, evaluators=evaluators)
    assert outcome.status == "failed"
    session.expire_all()
    job = session.get(RetrainJob, job_id)
    assert job is not None and job.message is not None
    if dropped:
        assert job.message.startswith("dataset: only 0 training examples") and "'dropped_toxic': 20" in job.message
    else:
        assert job.message == "train: stop after the dataset stage"
