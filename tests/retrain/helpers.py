"""Row builders for registry tests: candidates with passing or failing gates, without training anything."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from retrain.gates import GateConfig, ModelScores, evaluate_gates
from retrain.models import AuditEntry, ModelVersion
from retrain.registry import ensure_champion, register_challenger


def scores(nll: float, toxicity: float = 0.0, bias: float = 0.1) -> ModelScores:
    return ModelScores(eval_nll=nll, eval_tokens=100, toxicity_rate=toxicity, n_generated=10, bias_gap=bias,
                       similarity=0.5, n_similarity=4)


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
