"""One retraining job from start to registered challenger: dataset → train → evaluate → register.

`run_retrain_job(job_id)` is what the Celery task and the embedded runner call. It is safe to run again:

- progress (stage, share done, losses so far) is committed on its own as the job goes, results only at the end;
- the adapter directory is keyed by the job id and replaced whole on a re-run (`train_lora` publishes by
  rename, so it is either absent or complete);
- the version row, the `challenger` alias, the audit entry and the job's success are written in ONE
  transaction at the end, and `model_versions.job_id` is unique: a worker killed anywhere before that commit
  leaves no version, and the re-delivered task starts over; one killed after it finds the job done.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from monitor.db import run_unit, session_factory, utcnow
from monitor.encoding import json_safe
from monitor.llm import DEFAULT_MODEL_ALIAS, LoadedLM
from monitor.models import Project
from monitor.settings import Settings, get_settings
from retrain.dataset.builder import DatasetSnapshot, build_dataset
from retrain.dataset.store import feedback_rows, store_snapshot
from retrain.evaluation.gates import GateReport, evaluate_gates
from retrain.evaluation.scoring import (
    Evaluators,
    ModelEvaluation,
    default_evaluators,
    evaluate_model,
    quality_evaluators,
)
from retrain.jobs import alerting
from retrain.jobs.base_models import check_base_model
from retrain.jobs.config import RetrainConfig, effective_config
from retrain.jobs.service import STAGE_END, update_job
from retrain.models import ModelVersion, RetrainJob
from retrain.public_paths import scrub_text
from retrain.registry.service import VersionRef, ensure_champion, register_challenger
from retrain.serving.lm_cache import get_lm
from retrain.training.lora import TrainExample, TrainResult, train_lora

log = logging.getLogger(__name__)
PROGRESS_EVERY_SECONDS = 0.5


class JobError(RuntimeError):
    """A job that cannot go on for a reason its user can fix (too little data, a missing adapter)."""


@dataclass(frozen=True)
class JobOutcome:
    job_id: int
    status: str  # succeeded | failed | skipped (already done / unknown)
    version: str | None = None
    gates_passed: bool | None = None
    message: str | None = None


@dataclass(frozen=True)
class _Start:
    project_id: int
    project_config: dict[str, Any]
    params: dict[str, Any]
    created_by: str
    trigger: dict[str, Any]


def _version_of_job(session: Session, job_id: int) -> ModelVersion | None:
    return session.scalars(select(ModelVersion).where(ModelVersion.job_id == job_id)).first()


def _start(session: Session, job_id: int) -> _Start | JobOutcome:
    stmt = select(RetrainJob).where(RetrainJob.id == job_id)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    job = session.scalars(stmt).first()
    if job is None:
        return JobOutcome(job_id, "skipped", message="no such job")
    done = _version_of_job(session, job_id)
    if job.status == "succeeded" or done is not None:
        return JobOutcome(job_id, "skipped", version=done.name if done else None, message="already registered")
    project = session.get(Project, job.project_id)
    assert project is not None  # jobs are deleted with their project
    now = utcnow()
    first = job.attempts == 0
    job.status, job.stage, job.progress, job.losses, job.message = "running", "dataset", 0.0, [], None
    job.attempts += 1
    job.started_at, job.finished_at, job.updated_at = now, None, now
    if first:
        alerting.emit(session, job.project_id, "retrain.started",
                   {"job_id": job.id, "project": project.slug, "trigger": job.trigger, "created_by": job.created_by})
    return _Start(job.project_id, dict(project.config or {}), dict(job.params or {}), job.created_by,
                  dict(job.trigger or {}))


def _build(session: Session, start: _Start, cfg: RetrainConfig, settings: Settings,
           evaluators: Evaluators) -> tuple[DatasetSnapshot, Path]:
    rows = feedback_rows(session, start.project_id, limit=settings.retrain_max_rows)
    # Targets are filtered at the threshold the toxicity gate counts with: the scorer's calibrated one unless
    # DRIFTLOOP_TOXICITY_THRESHOLD or the config's eval/dataset section sets another.
    snapshot = build_dataset(rows, toxicity=lambda texts: [float(x) for x in evaluators.toxicity.score(texts)],
                             toxicity_threshold=evaluators.toxicity_threshold, options=cfg.dataset)
    if len(snapshot.train) < cfg.min_examples:
        raise JobError(f"only {len(snapshot.train)} training examples after filtering (need {cfg.min_examples}; "
                       f"stats {snapshot.stats}): collect more positive or corrected feedback, or lower "
                       "DRIFTLOOP_RETRAIN_MIN_EXAMPLES")
    return snapshot, store_snapshot(snapshot, Path(settings.data_dir), start.project_id)


def _train(lm: LoadedLM, factory: sessionmaker[Session], job_id: int, snapshot: DatasetSnapshot,
           cfg: RetrainConfig, out_dir: Path) -> TrainResult:
    losses: list[float] = []
    last = [0.0]
    begin, end = STAGE_END["dataset"], STAGE_END["train"]

    def progress(step: int, total: int, loss: float) -> None:
        losses.append(loss)
        now = time.monotonic()
        if step == total or now - last[0] >= PROGRESS_EVERY_SECONDS:
            last[0] = now
            update_job(factory, job_id, progress=begin + (end - begin) * step / total, losses=list(losses),
                       message=f"training step {step}/{total}, loss {loss:.4f}")

    examples = [TrainExample(e.prompt, e.response) for e in snapshot.train]
    return train_lora(lm, examples, cfg.lora, out_dir, overwrite=True, progress=progress)


def _evaluate(lm: LoadedLM, factory: sessionmaker[Session], job_id: int, snapshot: DatasetSnapshot,
              cfg: RetrainConfig, evaluators: Evaluators, champion: VersionRef,
              adapter_dir: Path) -> tuple[ModelEvaluation, ModelEvaluation]:
    if champion.adapter_path is not None and not Path(champion.adapter_path).is_dir():
        raise JobError(f"the champion {champion.name}'s adapter {champion.adapter_path} is missing; "
                       "restore it or promote another version")
    begin, end = STAGE_END["train"], STAGE_END["evaluate"]
    out = []
    for i, (who, adapter) in enumerate((("champion", champion.adapter_path), ("challenger", str(adapter_dir)))):
        def progress(part: str, done: int, total: int, i: int = i, who: str = who) -> None:
            share = (i + done / total) / 2
            update_job(factory, job_id, progress=begin + (end - begin) * share, message=f"evaluating {who}: {part}")

        out.append(evaluate_model(lm, adapter, snapshot.eval, cfg.eval, evaluators,
                                  max_length=cfg.lora.max_length, seed=cfg.lora.seed, progress=progress))
    return out[0], out[1]


def _eval_results(champion: VersionRef, a: ModelEvaluation, b: ModelEvaluation, held_out: int) -> dict[str, Any]:
    return {"held_out_examples": held_out,
            "champion": {"version": champion.name, **a.scores.to_dict(), "details": a.details},
            "challenger": {**b.scores.to_dict(), "details": b.details}}


def _register(session: Session, job_id: int, fields: dict[str, Any], report: GateReport) -> ModelVersion:
    job = session.get(RetrainJob, job_id)
    assert job is not None
    version = _version_of_job(session, job_id)
    if version is None:
        version = register_challenger(session, job.project_id, actor=job.created_by, job_id=job_id,
                                      fields=fields, gate_summary=report.summary())
    now = utcnow()
    job.status, job.stage, job.progress, job.version_id = "succeeded", "done", 1.0, version.id
    job.finished_at, job.updated_at = now, now
    job.message = f"registered {version.name} as challenger: {report.summary()}"
    alerting.emit(session, job.project_id, "retrain.finished",
               {"job_id": job.id, "status": "succeeded", "version": version.name,
                "gates_passed": version.gates_passed, "gates": report.to_list(), "trigger": job.trigger})
    return version


def _fail(session: Session, job_id: int, stage: str, exc: BaseException) -> None:
    job = session.get(RetrainJob, job_id)
    if job is None:
        return
    now = utcnow()
    job.status, job.finished_at, job.updated_at = "failed", now, now
    text = f"{stage}: {exc}" if isinstance(exc, JobError) else f"{stage}: {type(exc).__name__}: {exc}"
    job.message = scrub_text(text)  # read keys, the UI and webhooks see it: no absolute server paths
    alerting.emit(session, job.project_id, "retrain.finished",
               {"job_id": job.id, "status": "failed", "stage": stage, "message": job.message[:2000],
                "trigger": job.trigger})


def run_job(factory: sessionmaker[Session], settings: Settings, job_id: int) -> JobOutcome | None:
    """The `driftloop.retrain.run_job` task run inline (embedded mode): a failure is recorded on the job row,
    and the caller (an alert evaluation, a CLI) carries on."""
    try:
        return run_retrain_job(job_id, factory=factory, settings=settings)
    except Exception:
        log.exception("retraining job %s failed", job_id)
        return None


def run_retrain_job(job_id: int, *, factory: sessionmaker[Session] | None = None, settings: Settings | None = None,
                    lm: LoadedLM | None = None, evaluators: Evaluators | None = None) -> JobOutcome:
    """Run (or re-run from the start) one job; see the module docstring for what makes that safe."""
    settings = settings or get_settings()
    factory = factory or session_factory()
    start = run_unit(factory, lambda s: _start(s, job_id))
    if isinstance(start, JobOutcome):
        return start
    stage = "dataset"
    try:
        cfg = effective_config(settings, start.project_config, start.params)
        evaluators = evaluators or default_evaluators(
            cfg.eval, embedding_model=settings.embedding_model, device=settings.device,
            quality=quality_evaluators(start.project_config, settings))
        snapshot, dataset_path = run_unit(factory, lambda s: _build(s, start, cfg, settings, evaluators))
        dataset = {"path": str(dataset_path), "hash": snapshot.content_hash, "stats": snapshot.stats,
                   "train": len(snapshot.train), "eval": len(snapshot.eval)}
        stage = "train"
        update_job(factory, job_id, stage=stage, progress=STAGE_END["dataset"], results={"dataset": dataset},
                   message=f"dataset {snapshot.content_hash[:12]}: {len(snapshot.train)} train, "
                           f"{len(snapshot.eval)} held out")
        # Checked again at run time: the project's config may have changed since the job was created.
        model_ref = run_unit(factory, lambda s: check_base_model(s, start.project_id, cfg.base_model, settings))
        lm = lm or get_lm(model_ref, settings)
        base_name = cfg.base_model or DEFAULT_MODEL_ALIAS
        champion = run_unit(factory, lambda s: _champion_ref(s, start.project_id, base_name))
        out_dir = Path(settings.data_dir).resolve() / "adapters" / f"project-{start.project_id}" / f"job-{job_id}"
        trained = _train(lm, factory, job_id, snapshot, cfg, out_dir)
        stage = "evaluate"
        update_job(factory, job_id, stage=stage, progress=STAGE_END["train"], losses=trained.losses)
        champ_eval, chall_eval = _evaluate(lm, factory, job_id, snapshot, cfg, evaluators, champion, out_dir)
        report = evaluate_gates(champ_eval.scores, chall_eval.scores, cfg.gates)
        stage = "register"
        fields = {"base_model": base_name, "adapter_path": str(out_dir), "parent_version_id": champion.id,
                  "dataset_path": str(dataset_path), "dataset_hash": snapshot.content_hash,
                  "dataset_stats": {**snapshot.stats, "train": len(snapshot.train), "eval": len(snapshot.eval)},
                  "hyperparams": {**cfg.hyperparams(), "base_version": lm.version, "device": lm.device,
                                  "train_seconds": trained.train_seconds, "peak_rss_mb": trained.peak_rss_mb},
                  "train_losses": trained.losses,
                  "eval_results": _eval_results(champion, champ_eval, chall_eval, len(snapshot.eval)),
                  "gate_results": report.to_list(), "gates_passed": report.passed, "trigger": start.trigger}
        try:
            fields = json_safe(fields)
            version = run_unit(factory, lambda s: _register(s, job_id, fields, report))
        except IntegrityError:  # a duplicate delivery of this job registered first
            version = run_unit(factory, lambda s: _register(s, job_id, fields, report))
        return JobOutcome(job_id, "succeeded", version.name, version.gates_passed, report.summary())
    except Exception as exc:
        log.exception("retraining job %s failed in stage %s", job_id, stage)
        failure, failed_stage = exc, stage  # bound here: `exc` is unset after the except block
        run_unit(factory, lambda s: _fail(s, job_id, failed_stage, failure))
        return JobOutcome(job_id, "failed", message=scrub_text(f"{stage}: {exc}"))


def _champion_ref(session: Session, project_id: int, base_name: str) -> VersionRef:
    v = ensure_champion(session, project_id, base_name)
    return VersionRef(v.id, v.name, v.base_model, v.adapter_path)
