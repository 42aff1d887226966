"""Erasure on request: every event of a session, of a metadata value or with given ids, with its embeddings,
scores and feedback, and the drift-explanation examples quoting its text.

Deleted in batches, each its own short transaction (like retention), so ingestion never waits long; a dry run
counts. The model registry's part (training-set snapshot lines, the versions trained on them, the audit entry)
lives in retrain/registry/erasure.py, which calls this; `driftloop erase` and `POST /v1/erasure` call that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, and_, delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.db import run_unit
from monitor.evaluators.models import EvalScore
from monitor.events.indexing import lock_search_index
from monitor.models import Event, EventSearch, Feedback
from monitor.partitions.service import forget_client_ids
from monitor.pipeline.models import DriftClusterEvent, EventScore, EventVector, MetricValue

ERASED = "<erased>"


@dataclass(frozen=True)
class Selector:
    session_id: str | None = None
    metadata: tuple[str, str] | None = None  # key, value (string comparison)
    event_ids: tuple[str, ...] = ()  # client event ids

    def __post_init__(self) -> None:
        if sum([self.session_id is not None, self.metadata is not None, bool(self.event_ids)]) != 1:
            raise ValueError("choose exactly one of: a session id, a metadata key=value, or event ids")

    def describe(self) -> dict[str, Any]:
        if self.session_id is not None:
            return {"session_id": self.session_id}
        if self.metadata is not None:
            return {"metadata": {self.metadata[0]: self.metadata[1]}}
        return {"event_ids": list(self.event_ids)}


def parse_metadata(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--metadata {text!r}: expected key=value")
    return key, value


@dataclass
class ErasureReport:
    dry_run: bool
    events: int = 0
    vectors: int = 0
    scores: int = 0
    feedback: int = 0
    metric_examples: int = 0
    batches: int = 0
    client_event_ids: set[str] = field(default_factory=set)
    texts: set[str] = field(default_factory=set)  # prompts and responses erased (to find quotes of them)

    def as_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "events": self.events, "vectors": self.vectors, "scores": self.scores,
                "feedback": self.feedback, "metric_examples": self.metric_examples, "batches": self.batches}


def _selected(project_id: int, sel: Selector) -> Select[Any]:
    stmt = select(Event.id).where(Event.project_id == project_id)
    if sel.session_id is not None:
        return stmt.where(Event.session_id == sel.session_id)
    if sel.metadata is not None:
        return stmt.where(Event.meta[sel.metadata[0]].as_string() == sel.metadata[1])
    return stmt.where(Event.client_event_id.in_(sel.event_ids))


def _rowcount(session: Session, stmt: Any) -> int:
    return int(session.execute(stmt, execution_options={"synchronize_session": False}).rowcount)  # type: ignore[attr-defined]


def count_selected(session: Session, project_id: int, sel: Selector) -> ErasureReport:
    ids = _selected(project_id, sel).subquery()
    rows = session.execute(select(Event.client_event_id).where(Event.id.in_(select(ids.c.id)))).scalars().all()
    report = ErasureReport(dry_run=True, client_event_ids=set(rows), events=len(rows))

    def count(stmt: Any) -> int:
        return int(session.scalar(stmt) or 0)

    selected = select(ids.c.id)
    report.vectors = count(select(func.count()).select_from(EventVector).where(EventVector.event_id.in_(selected)))
    # Scores: toxicity/sentiment and evaluator results (whose explanations may quote the response).
    report.scores = count(select(func.count()).select_from(EventScore).where(EventScore.event_id.in_(selected))) + \
        count(select(func.count()).select_from(EvalScore).where(EvalScore.event_id.in_(selected)))
    report.feedback = count(select(func.count()).select_from(Feedback).where(
        Feedback.project_id == project_id, Feedback.event_client_id.in_(report.client_event_ids or {""})))
    return report


def delete_batch(session: Session, project_id: int, sel: Selector, batch_size: int) -> tuple[ErasureReport, set[str]]:
    """Up to `batch_size` selected events with their vectors, scores and feedback; and the texts they held."""
    out = ErasureReport(dry_run=False)
    lock_search_index(session)  # before reading the events: no indexer batch may then write their vectors
    rows = session.execute(
        select(Event.id, Event.client_event_id, Event.prompt, Event.response)
        .where(Event.id.in_(_selected(project_id, sel).limit(batch_size).scalar_subquery()))
    ).all()
    if not rows:
        return out, set()
    ids = [r[0] for r in rows]
    out.client_event_ids = {r[1] for r in rows}
    texts = {t for r in rows for t in (r[2], r[3]) if t}
    out.vectors = _rowcount(session, delete(EventVector).where(EventVector.event_id.in_(ids)))
    out.scores = _rowcount(session, delete(EventScore).where(EventScore.event_id.in_(ids))) + \
        _rowcount(session, delete(EvalScore).where(EvalScore.event_id.in_(ids)))
    # the text vectors hold the erased words (a cascade too on plain tables; partitioned ones have none)
    _rowcount(session, delete(EventSearch).where(EventSearch.event_id.in_(ids)))
    of_events = and_(Feedback.project_id == project_id, Feedback.event_client_id.in_(out.client_event_ids))
    feedback_ids = list(session.scalars(select(Feedback.client_feedback_id).where(of_events)))
    out.feedback = _rowcount(session, delete(Feedback).where(of_events))
    # no foreign key cascades from a partitioned events table (monitor/partitions/schema.py): say it here
    _rowcount(session, delete(DriftClusterEvent).where(DriftClusterEvent.event_id.in_(ids)))
    out.events = _rowcount(session, delete(Event).where(Event.id.in_(ids)))
    forget_client_ids(session, project_id, events=out.client_event_ids, feedback=feedback_ids)
    return out, texts


def scrub_texts(value: Any, texts: set[str]) -> tuple[Any, int]:
    """`value` (JSON) with every string equal to one of `texts` replaced by `<erased>`, and how many were."""
    return _scrub(value, texts)


def _scrub(value: Any, texts: set[str]) -> tuple[Any, int]:
    if isinstance(value, str):
        return (ERASED, 1) if value in texts else (value, 0)
    if isinstance(value, dict):
        n = 0
        out: dict[str, Any] = {}
        for k, v in value.items():
            out[k], m = _scrub(v, texts)
            n += m
        return out, n
    if isinstance(value, list):
        items = [_scrub(v, texts) for v in value]
        return [v for v, _ in items], sum(m for _, m in items)
    return value, 0


def scrub_metric_examples(session: Session, project_id: int, texts: set[str]) -> int:
    """Replace quoted texts (drift explanation examples) in the project's metric rows by `<erased>`."""
    if not texts:
        return 0
    changed = 0
    for row in session.scalars(select(MetricValue).where(MetricValue.project_id == project_id)):
        details, n = _scrub(row.details, texts)
        if n:
            row.details = details
            changed += n
    return changed


def erase_events(
    factory: sessionmaker[Session], project_id: int, sel: Selector, *, batch_size: int = 5000, dry_run: bool = False,
) -> ErasureReport:
    """Delete (or, with `dry_run`, count) the selected events and everything derived from them, in batches."""
    if dry_run:
        return run_unit(factory, lambda s: count_selected(s, project_id, sel))
    report = ErasureReport(dry_run=False)
    while True:
        batch, texts = run_unit(factory, lambda s: delete_batch(s, project_id, sel, batch_size))
        if not batch.events:
            break
        report.batches += 1
        report.events += batch.events
        report.vectors += batch.vectors
        report.scores += batch.scores
        report.feedback += batch.feedback
        report.client_event_ids |= batch.client_event_ids
        report.texts |= texts
        report.metric_examples += run_unit(factory, lambda s, t=texts: scrub_metric_examples(s, project_id, t))  # type: ignore[misc]
    return report
