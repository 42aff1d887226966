"""Reading and writing evaluator scores: one row per (event, evaluator name, version), computed once.

A recomputed window reads its stored scores back and evaluates only the events that have none, so an LLM judge
is never paid twice for the same event and version."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from monitor.db import utcnow
from monitor.evaluators.base import EvalResult
from monitor.evaluators.models import EXPLANATION_CHARS, EvalScore
from monitor.pipeline.idsets import id_conditions


def stored_scores(session: Session, event_ids: Sequence[int], evaluator: str, version: str) -> dict[int, EvalResult]:
    out: dict[int, EvalResult] = {}
    for cond in id_conditions(session, EvalScore.event_id, event_ids):
        rows = session.execute(select(EvalScore.event_id, EvalScore.value, EvalScore.label, EvalScore.explanation,
                                      EvalScore.error).where(cond, EvalScore.evaluator == evaluator,
                                                             EvalScore.version == version))
        out.update((eid, EvalResult(value, label, text, error)) for eid, value, label, text, error in rows)
    return out


def _clip(text: str | None) -> str | None:
    return None if text is None else text[:EXPLANATION_CHARS]


def store_scores(session: Session, project_id: int, evaluator: str, version: str,
                 results: dict[int, EvalResult]) -> int:
    """Insert results not stored yet (a concurrent run's rows win: the same version gives the same score)."""
    if not results:
        return 0
    now = utcnow()
    rows = [{"event_id": eid, "evaluator": evaluator, "version": version, "project_id": project_id,
             "value": r.value, "label": r.label, "explanation": _clip(r.explanation) or "", "error": _clip(r.error),
             "created_at": now} for eid, r in results.items()]
    ins = pg_insert(EvalScore) if session.get_bind().dialect.name == "postgresql" else sqlite_insert(EvalScore)
    for i in range(0, len(rows), 1000):
        session.execute(ins.on_conflict_do_nothing(index_elements=["event_id", "evaluator", "version"]),
                        rows[i : i + 1000])
    return len(rows)
