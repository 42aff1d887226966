"""Row builders for registry tests: candidates with passing or failing gates, without training anything."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from retrain.evaluation.gate_stats import disparity
from retrain.evaluation.gates import GateConfig, ModelScores, evaluate_gates
from retrain.models import AuditEntry, ModelVersion
from retrain.registry.service import ensure_champion, register_challenger


def scores(nll: float, toxicity: float = 0.0, bias: float = 0.1, *, n: int = 200, templates: int = 10,
           similarity: float = 0.5, eval_tokens: int = 100) -> ModelScores:
    """Scores with the per-unit data the paired gates use: `n` answers of which the first `toxicity * n` are
    toxic (so two calls pair prompt by prompt), and per-template sentiment cells whose group gap is `bias`."""
    k = round(toxicity * n)
    flags = tuple([1] * k + [0] * (n - k))
    cells = {"gender": [[0.2 + bias, 0.2] for _ in range(templates)]}
    return ModelScores(eval_nll=nll, eval_tokens=eval_tokens, toxicity_rate=k / n, n_generated=n, bias_gap=bias,
                       bias_disparity=disparity(np.array(cells["gender"])) if templates >= 2 else None,
                       similarity=similarity, n_similarity=4, toxic_flags=flags, bias_cells=cells)


def add_candidate(session: Session, project_id: int, *, passing: bool, adapter_path: str | None = "/tmp/adapter",
                  job_id: int | None = None) -> ModelVersion:
    """A registered challenger whose gate report really passed (lower loss) or failed (higher toxicity)."""
    champion = ensure_champion(session, project_id, "smollm2")
    challenger = scores(2.0) if passing else scores(2.0, toxicity=0.5)
    report = evaluate_gates(scores(2.5), challenger, GateConfig())
    assert report.passed is passing
    fields: dict[str, Any] = {"base_model": "smollm2", "adapter_path": adapter_path,
                              "parent_version_id": champion.id, "gate_results": report.to_list(),
                              "gates_passed": report.passed, "dataset_stats": {}, "hyperparams": {},
                              "train_losses": [], "eval_results": {}, "trigger": {"kind": "test"}}
    return register_challenger(session, project_id, actor="test", job_id=job_id, fields=fields,
                               gate_summary=report.summary())


def audit_actions(session: Session, project_id: int) -> list[tuple[str, str | None, str | None]]:
    """(action, version name, reason) in order."""
    rows = session.execute(
        select(AuditEntry.action, ModelVersion.name, AuditEntry.reason)
        .outerjoin(ModelVersion, ModelVersion.id == AuditEntry.version_id)
        .where(AuditEntry.project_id == project_id).order_by(AuditEntry.id)).all()
    return [(a, n, r) for a, n, r in rows]


TOPICS = ["password reset", "refund", "delivery", "invoice", "subscription", "discount", "account", "order",
          "login", "receipt", "upgrade", "cancellation"]


def seed_feedback(session: Session, project_id: int, n: int, *, corrected_every: int = 3,
                  prefix: str = "q") -> list[str]:
    """`n` answered questions with positive feedback; every `corrected_every`-th carries a corrected answer."""
    from datetime import UTC, datetime, timedelta

    from monitor.ingest.service import ingest_events, ingest_feedback
    from monitor.schemas import EventIn, FeedbackIn

    t0 = datetime(2026, 11, 20, 9, tzinfo=UTC)
    events, feedback = [], []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        eid = f"{prefix}{i}"
        events.append(EventIn(event_id=eid, timestamp=t0 + timedelta(minutes=i),
                              prompt=f"How do I handle a {topic} request, case {i}?",
                              response=f"Check the {topic} policy and reply within a day (case {i}).",
                              model="base", model_version="v0"))
        corrected = (f"Confirm the account, apply the {topic} rules, and close case {i} the same day."
                     if corrected_every and i % corrected_every == 0 else None)
        feedback.append(FeedbackIn(feedback_id=f"f-{eid}", event_id=eid, score=1.0 if corrected is None else 0.0,
                                   corrected_response=corrected))
    ingest_events(session, project_id, events)
    ingest_feedback(session, project_id, feedback)
    return [e.event_id for e in events]


def fire_retrain_alert(session: Session, factory: Any, project_id: int, params: dict[str, Any]) -> None:
    """A drift rule with a `retrain` action, then a breaching window finished the way production finishes it
    (the runner's window hook evaluates the rule; the firing asks for retraining)."""
    from monitor.alerts.rule_service import create_rule
    from monitor.alerts.rules import RuleSpec
    from tests.support.metric_windows import drift_point, finish, write_window

    create_rule(session, project_id, RuleSpec.model_validate({
        "name": "prompt-drift", "metric": "drift.prompt.mmd", "field": "p_value", "comparator": "<",
        "threshold": 0.01, "actions": [{"type": "retrain", "params": params}]}))
    session.commit()
    write_window(factory, project_id, 0, [drift_point(0.001)])
    finish(factory, project_id, 0)
