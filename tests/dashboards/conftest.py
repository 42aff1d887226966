"""A Postgres database holding what every dashboard panel reads, made by the real code paths: events and
feedback through ingestion, four hourly windows through the in-process runner (ops, drift with embeddings and
its explanation, safety and bias stages, alert evaluation and signed webhooks to loopback receivers), a
counterfactual probe run, and the closed loop's registry (jobs, versions with evaluations and gates, approve,
promote, rollback, a failed job). Seeded once per module inside a transaction that is rolled back at the end."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from monitor.db import run_unit, utcnow
from monitor.demo.traffic import mixed
from monitor.schemas import EventIn, FeedbackIn
from monitor.settings import reset_settings_cache
from tests.support.webhook_receiver import Answer, Receiver, running_receiver

T0 = datetime(2026, 11, 20, tzinfo=UTC)
QUIET = {"account": 0.34, "billing": 0.33, "shipping": 0.33}
SHIFTED = {"cooking": 0.5, "travel": 0.5}
WINDOWS = [(QUIET, "v1"), (QUIET, "v1"), (SHIFTED, "v2"), (QUIET, "v1")]
PER_WINDOW = 150


@dataclass(frozen=True)
class Seeded:
    connection: Connection
    slug: str
    project_id: int
    start: datetime  # a time range covering every seeded row
    end: datetime


def _events(window: int, mix: dict[str, float], version: str) -> list[EventIn]:
    rng = np.random.default_rng(window)
    out = []
    for i, text in enumerate(mixed(mix, PER_WINDOW, seed=window)):
        rude = i % 10 == 0  # a share of rude answers, all to one locale: toxicity and a bias gap to show
        out.append(EventIn(
            event_id=f"w{window}-{i}", timestamp=T0 + timedelta(hours=window, seconds=20 * i), prompt=text,
            response="That is a stupid question, you idiot." if rude else f"Thanks for asking. {text[:30]}",
            latency_ms=float(rng.lognormal(5, 0.3)), prompt_tokens=len(text.split()), completion_tokens=12,
            model="support-bot", model_version=version, error="upstream timeout" if i % 25 == 0 else None,
            metadata={"locale": "de" if i % 2 == 0 else "en"}))
    return out


def _seed_traffic(factory: sessionmaker[Session], slug: str, ok: Receiver, gone: Receiver) -> int:
    from monitor.alerts.rule_service import create_rule
    from monitor.alerts.rules import RuleSpec
    from monitor.ingest.service import ingest_events, ingest_feedback
    from monitor.projects.service import get_or_create_project
    from monitor.runner import run_pending
    from monitor.settings import get_settings
    from monitor.webhooks.endpoints import EndpointSpec, create_endpoint

    def setup(s: Session) -> int:
        project = get_or_create_project(s, slug)
        project.config = {"reference": {"kind": "first_n", "n": PER_WINDOW}, "segment_keys": ["locale"],
                          "drift_min_samples": 60, "min_samples": 30, "drift_fields": ["prompt"],
                          "bias_attribute": "locale", "bias_min_group_size": 30,
                          "evaluators": [{"kind": "refusal"}, {"kind": "degenerate"}]}
        for w, (mix, version) in enumerate(WINDOWS):
            ingest_events(s, project.id, _events(w, mix, version))
            if w:
                ingest_feedback(s, project.id, [
                    FeedbackIn(feedback_id=f"f{w}-{i}", event_id=f"w{w}-{i}", score=1.0 if i % 4 else 0.0)
                    for i in range(40)])
        for name, receiver in (("oncall", ok), ("legacy", gone)):
            create_endpoint(s, project.id, EndpointSpec(name=name, url=receiver.url), settings=get_settings())
        create_rule(s, project.id, RuleSpec.model_validate({
            "name": "prompt-drift", "metric": "drift.prompt.mmd", "field": "p_value", "comparator": "<",
            "threshold": 0.01, "for_windows": 1, "actions": [{"type": "webhook", "endpoints": ["oncall", "legacy"]}]}))
        return project.id

    pid = run_unit(factory, setup)
    report = run_pending(factory=factory, project_ids=[pid])
    assert report.failures == [] and report.windows == len(WINDOWS), report
    return pid


def _seed_probes(factory: sessionmaker[Session], pid: int) -> None:
    from monitor.safety.probe_job import run_probe_job

    def generate(prompts: list[str]) -> list[str]:  # a stand-in model whose answers differ by group
        return ["What a wonderful, kind and brilliant person." if ("she" in p.lower() or "woman" in p.lower())
                else "They are fine, I suppose." for p in prompts]

    run_unit(factory, lambda s: run_probe_job(s, pid, generate, axes=["gender"], n_bootstrap=200, seed=1,
                                              at=T0 + timedelta(hours=5)))


def _candidate(s: Session, pid: int, job_id: int, *, passing: bool) -> None:
    """Register a job's challenger the way the pipeline does, from real gate and evaluation results."""
    from retrain.evaluation.gates import GateConfig, evaluate_gates
    from retrain.evaluation.scoring import ModelEvaluation
    from retrain.jobs.pipeline import _champion_ref, _eval_results, _register
    from tests.support.retrain import scores

    champion = _champion_ref(s, pid, "smollm2")
    before = scores(2.5, 0.0, 0.1, similarity=0.6, eval_tokens=400)
    after = scores(2.1 if passing else 2.6, 0.0 if passing else 0.25, 0.08, similarity=0.7, eval_tokens=400)
    report = evaluate_gates(before, after, GateConfig())
    assert report.passed is passing
    fields: dict[str, Any] = {
        "base_model": "smollm2", "adapter_path": f"/data/adapters/job-{job_id}", "parent_version_id": champion.id,
        "dataset_path": f"/data/datasets/job-{job_id}.jsonl", "dataset_hash": f"{job_id:064x}",
        "dataset_stats": {"train": 48, "eval": 16}, "hyperparams": {"r": 8}, "train_losses": [2.9, 2.4, 2.2],
        "eval_results": _eval_results(champion, ModelEvaluation(before), ModelEvaluation(after), 16),
        "gate_results": report.to_list(), "gates_passed": report.passed, "trigger": {"kind": "manual"}}
    _register(s, job_id, fields, report)


def _seed_registry(factory: sessionmaker[Session], pid: int) -> None:
    from retrain.jobs.pipeline import JobError, _fail
    from retrain.jobs.service import create_job, update_job
    from retrain.registry.service import approve, ensure_champion, promote, rollback

    def job() -> int:
        job_id = run_unit(factory, lambda s: create_job(s, pid, created_by="cli:ops", trigger={"kind": "manual"}).id)
        update_job(factory, job_id, status="running", stage="train", started_at=utcnow(), losses=[2.9, 2.4, 2.2])
        return job_id

    run_unit(factory, lambda s: ensure_champion(s, pid, "smollm2"))
    first = job()
    run_unit(factory, lambda s: _candidate(s, pid, first, passing=True))  # v1
    run_unit(factory, lambda s: approve(s, pid, "v1", actor="ui:ana", reason="loss down, gates passed"))
    run_unit(factory, lambda s: promote(s, pid, "v1", actor="ui:ana", reason="better on refunds"))
    failed = job()
    run_unit(factory, lambda s: _fail(s, failed, "dataset", JobError("only 3 training examples after filtering")))
    third = job()
    run_unit(factory, lambda s: _candidate(s, pid, third, passing=True))  # v2
    run_unit(factory, lambda s: promote(s, pid, "v2", actor="ui:ana", reason="fresher data"))
    run_unit(factory, lambda s: rollback(s, pid, actor="ui:ben", reason="complaints about tone"))
    fourth = job()
    run_unit(factory, lambda s: _candidate(s, pid, fourth, passing=False))  # v3: the waiting challenger


@pytest.fixture(scope="module")
def seeded(pg_engine: Engine) -> Iterator[Seeded]:
    from tests.support.factories import unique_slug

    conn = pg_engine.connect()
    outer = conn.begin()
    factory = sessionmaker(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    slug = unique_slug("dash")
    try:
        with pytest.MonkeyPatch.context() as mp, running_receiver() as ok, running_receiver() as gone:
            mp.setenv("DRIFTLOOP_WEBHOOK_ALLOW_PRIVATE", "true")  # the receivers listen on loopback
            mp.setenv("DRIFTLOOP_WEBHOOK_TIMEOUT_SECONDS", "5")
            reset_settings_cache()
            gone.script = [Answer(status=410) for _ in range(20)]  # an endpoint that was removed: disabled
            pid = _seed_traffic(factory, slug, ok, gone)
            _seed_probes(factory, pid)
            _seed_registry(factory, pid)
            assert ok.requests and gone.requests  # webhooks really went out
        reset_settings_cache()
        yield Seeded(conn, slug, pid, T0 - timedelta(days=1), max(utcnow(), T0) + timedelta(days=1))
    finally:
        reset_settings_cache()
        outer.rollback()
        conn.close()
