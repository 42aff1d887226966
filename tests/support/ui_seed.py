"""A project the UI can show, built with the real service functions: events through ingestion, metric rows
through the pipeline's upsert, an alert fired by the production evaluation path (with its webhook delivery
and retrain request), a dataset built and stored by the retraining code, and a challenger registered with
`register_challenger` (evaluation and gates computed by `retrain.evaluation.gates`; no real LoRA training)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerts.models import Alert, AlertActionRequest
from monitor.alerts.rule_service import create_rule
from monitor.alerts.rules import RuleSpec
from monitor.demo.traffic import mixed
from monitor.drift.thresholds import Calibration
from monitor.evaluators.degenerate import DegenerateEvaluator, DegenerateParams
from monitor.evaluators.refusal import RefusalEvaluator, RefusalParams
from monitor.ingest.service import ingest_events
from monitor.models import Event
from monitor.pipeline.clusters import store_cluster_members
from monitor.pipeline.ops import MetricPoint
from monitor.pipeline.store import upsert_points
from monitor.projects.service import get_or_create_project
from monitor.runner import process_window
from monitor.schemas import EventIn
from monitor.settings import Settings
from monitor.webhooks.endpoints import EndpointSpec, create_endpoint
from retrain.dataset.builder import FeedbackRow, build_dataset
from retrain.dataset.store import store_snapshot
from retrain.evaluation.gates import GateConfig, ModelScores, evaluate_gates
from retrain.evaluation.scoring import score_answers
from retrain.jobs.service import trigger_from_alert
from retrain.models import ModelVersion
from retrain.registry.service import ensure_champion, register_challenger
from tests.support.retrain import scores as paired_scores

T0 = datetime(2026, 11, 20, tzinfo=UTC)
H = timedelta(hours=1)
QUIET = {"account": 0.34, "billing": 0.33, "shipping": 0.33}
SHIFTED = {"cooking": 0.5, "travel": 0.5}
WINDOWS = 8
SHIFT_FROM = 6  # windows 6 and 7 drift
PER_WINDOW = 30
PASSWORD = "correct horse battery staple"


def window(i: int) -> datetime:
    return T0 + i * H


@dataclass(frozen=True)
class World:
    slug: str
    project_id: int
    alert_id: int
    drift_window: datetime
    challenger: str


def _events(i: int) -> list[EventIn]:
    mix = SHIFTED if i >= SHIFT_FROM else QUIET
    rng = np.random.default_rng(i)
    return [EventIn(event_id=f"w{i}-{k}", timestamp=window(i) + timedelta(seconds=60 * k), prompt=text,
                    response=f"Thanks for asking. {text[:40]}", latency_ms=float(rng.lognormal(5.5, 0.3)),
                    prompt_tokens=len(text.split()), completion_tokens=int(rng.integers(8, 30)), model_version="v0")
            for k, text in enumerate(mixed(mix, PER_WINDOW, seed=i))]


def _points(session: Session, project_id: int, i: int) -> list[MetricPoint]:
    rng = np.random.default_rng(100 + i)
    drifted = i >= SHIFT_FROM
    p_prompt = 0.001 if drifted else float(rng.uniform(0.2, 0.9))
    # What the pipeline stores for a calibrated row (monitor/drift/thresholds.py, monitor/drift/budget.py).
    cal = Calibration("mmd", 2.5, 1.75, (1.4, 3.9), "reference_blocks", 0.0, 0.01, 3.68, 1000, 16, 125, 128,
                      0.002, "time blocks differ beyond sampling noise").to_dict()
    details: dict[str, Any] = {"p_calibrated": p_prompt, "p_adjusted": min(1.0, 2 * p_prompt),
                               "details": {"calibration": {**cal, "computed_at": "2026-11-20T00:00:00+00:00"}}}
    if drifted:
        rows = session.execute(select(Event.id, Event.prompt).where(
            Event.project_id == project_id, Event.ts >= window(i), Event.ts < window(i + 1)).order_by(Event.id)).all()
        ids, prompts = [r[0] for r in rows], [r[1] for r in rows]
        details["explanation"] = {"n_clusters": 6, "total_variation": 0.62, "clusters": [
            {"cluster": 2, "share_reference": 0.0, "share_current": 0.48, "lift": 28.8, "growth": 0.48,
             "n_reference": 0, "n_current": 14, "example_indices": [], "examples": prompts[0:10:2],
             "example_event_ids": ids[0:10:2]},
            {"cluster": 4, "share_reference": 0.01, "share_current": 0.41, "lift": 24.6, "growth": 0.40,
             "n_reference": 1, "n_current": 12, "example_indices": [], "examples": prompts[1:10:2],
             "example_event_ids": ids[1:10:2]}]}
        # The members the drift stage would store beside its explanation (monitor/pipeline/clusters.py).
        store_cluster_members(session, project_id, window(i), "drift.prompt.mmd",
                              [(2, ids[0:10:2]), (4, ids[1:10:2])])
    return [
        MetricPoint("drift.prompt.mmd", "ok", PER_WINDOW, value=0.09 if drifted else float(rng.uniform(0, 0.004)),
                    p_value=p_prompt, threshold=0.01, flagged=p_prompt < 0.01, details=details),
        MetricPoint("drift.response.mmd", "ok", PER_WINDOW, value=0.05 if drifted else float(rng.uniform(0, 0.004)),
                    p_value=0.004 if drifted else 0.5, threshold=0.01, flagged=drifted),
        MetricPoint("safety.toxicity_rate.response", "ok", PER_WINDOW, value=float(rng.uniform(0, 0.04))),
        MetricPoint("safety.toxicity_rate.prompt", "ok", PER_WINDOW, value=float(rng.uniform(0, 0.08))),
        MetricPoint("bias.toxicity_rate.gap", "ok", PER_WINDOW, value=float(rng.uniform(0, 0.05)), p_value=0.6,
                    flagged=False),
        MetricPoint("bias.sentiment.gap", "ok", PER_WINDOW, value=float(rng.uniform(0.02, 0.1)), p_value=0.4,
                    flagged=False),
        MetricPoint("ops.volume", "ok", PER_WINDOW, value=float(PER_WINDOW)),
        MetricPoint("ops.error_rate", "ok", PER_WINDOW, value=float(rng.uniform(0, 0.03))),
        MetricPoint("ops.latency_p95", "ok", PER_WINDOW, value=float(rng.normal(420, 30))),
        MetricPoint("feedback.positive_rate", "ok", PER_WINDOW, value=float(rng.uniform(0.6, 0.8))),
    ]


def _scores(nll: float, toxicity: float, bias: float) -> ModelScores:
    return paired_scores(nll, toxicity, bias, similarity=0.61, eval_tokens=812)


def _samples(prompts: list[str], who: str) -> list[dict[str, Any]]:
    return [{"prompt": p, "reference": f"Here is how: {p[:30]}", "answer": f"[{who}] {p[:40]} — answer",
             "toxicity": 0.0} for p in prompts]


REFUSED = "I'm sorry, but I can't help with that."


def _evaluator_scores(prompts: list[str], refusals: int) -> dict[str, Any]:
    """What evaluation records for the project's evaluators: real evaluators on answers (`refusals` refused)."""
    answers = [REFUSED if k < refusals else f"Sure: here is how to do it. {p[:40]}." for k, p in enumerate(prompts)]
    evaluators = (RefusalEvaluator("refusal", RefusalParams()), DegenerateEvaluator("degenerate", DegenerateParams()))
    return score_answers(evaluators, prompts, answers, [None] * len(prompts))


def register_rich_challenger(session: Session, project_id: int, *, data_dir: Path, passing: bool = True,
                             trigger: dict[str, Any] | None = None) -> ModelVersion:
    """A challenger with everything its page shows: dataset file, loss curve, evaluation, gates, answers."""
    champion = ensure_champion(session, project_id, "smollm2-135m")
    rows = [FeedbackRow(f"e{k}", text, f"Thanks for asking. {text[:40]}", 1.0, "thumbs_up",
                        f"Corrected: {text[:30]}" if k % 3 == 0 else None)
            for k, text in enumerate(mixed(SHIFTED, 60, seed=99))]
    snapshot = build_dataset(rows)
    path = store_snapshot(snapshot, data_dir, project_id)
    champ, chall = _scores(2.41, 0.0, 0.08), _scores(2.07, 0.0 if passing else 0.25, 0.09)
    report = evaluate_gates(champ, chall, GateConfig())
    assert report.passed is passing
    prompts = [e.prompt for e in snapshot.eval[:3]]
    held_out = [e.prompt for e in snapshot.eval[:6]]
    losses = [2.6 * math.exp(-k / 25) + 1.4 + 0.08 * math.sin(k) for k in range(60)]
    fields: dict[str, Any] = {
        "base_model": "smollm2-135m", "adapter_path": str(data_dir / "adapters" / "job-x"),
        "parent_version_id": champion.id, "dataset_path": str(path), "dataset_hash": snapshot.content_hash,
        "dataset_stats": {**snapshot.stats, "train": len(snapshot.train), "eval": len(snapshot.eval)},
        "hyperparams": {"lora_r": 8, "lr": 0.0002, "max_steps": 60}, "train_losses": losses,
        "eval_results": {"held_out_examples": len(snapshot.eval),
                         "champion": {"version": champion.name, **champ.to_dict(),
                                      "details": {"samples": _samples(prompts, "champion"),
                                                  "evaluators": _evaluator_scores(held_out, refusals=2)}},
                         "challenger": {**chall.to_dict(), "details": {
                             "samples": _samples(prompts, "challenger"),
                             "evaluators": _evaluator_scores(held_out, refusals=0)}}},
        "gate_results": report.to_list(), "gates_passed": report.passed,
        "trigger": trigger or {"kind": "manual", "actor": "seed", "reason": "test"},
    }
    return register_challenger(session, project_id, actor="retrain", job_id=None, fields=fields,
                               gate_summary=report.summary())


def seed_world(factory: sessionmaker[Session], settings: Settings, *, slug: str, receiver_url: str | None = None,
               passing: bool = True) -> World:
    """The whole picture for one project (commits: it is what a running deployment would hold)."""
    reference = {"kind": "range", "start": window(0).isoformat(), "end": window(SHIFT_FROM).isoformat()}
    with factory() as s:
        project = get_or_create_project(s, slug)
        project.config = {"reference": reference}
        for i in range(WINDOWS):
            ingest_events(s, project.id, _events(i))
        actions: list[dict[str, Any]] = [{"type": "retrain"}]
        if receiver_url:
            create_endpoint(s, project.id, EndpointSpec(name="oncall", url=receiver_url), settings=settings)
            actions.insert(0, {"type": "webhook", "endpoints": ["oncall"]})
        create_rule(s, project.id, RuleSpec(name="prompt-drift", metric="drift.prompt.mmd", field="p_value",
                                            comparator="<", threshold=0.01, severity="critical",
                                            actions=actions))  # type: ignore[arg-type]
        s.commit()
        project_id = project.id
    for i in range(WINDOWS):
        with factory() as s:
            upsert_points(s, project_id, "all", window(i), window(i + 1), _points(s, project_id, i))
            s.commit()
        process_window(project_id, window(i), factory=factory, only=[])  # production's window finish: alerts
    with factory() as s:
        alert = s.scalars(select(Alert).where(Alert.project_id == project_id)).one()
        request = s.scalars(select(AlertActionRequest).where(AlertActionRequest.alert_id == alert.id)).one()
        version = register_rich_challenger(s, project_id, data_dir=Path(settings.data_dir), passing=passing,
                                           trigger=trigger_from_alert(s, request))
        s.commit()
        return World(slug, project_id, alert.id, window(SHIFT_FROM), version.name)
