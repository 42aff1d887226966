"""Retention: delete events (with their embeddings and scores) and feedback older than N days.

On a Postgres database partitioned by time (monitor/partitions/), whole ranges that end before the cutoff are
dropped first (no row-by-row work, however many rows they hold); the batched DELETE then takes what is left: rows
of the range that straddles the cutoff, and of the DEFAULT partition.

Rows go in small batches, each its own short transaction, so ingestion never waits on a long lock: on Postgres a
batch locks only the rows it deletes (`FOR UPDATE SKIP LOCKED`, found through the (project, ts) index); on SQLite,
whose writers take turns, a batch holds the write lock for milliseconds. Age is the event's (or feedback's) own
timestamp — the time the metrics use — so an event sent today with a timestamp older than the cutoff is removed
at the next run. Metric rows, window states, alerts, webhooks and the model registry are kept: they are small,
and they are the history people look back on.

`expired_counts` and `delete_expired_batch` are service functions (session first, no commit);
`apply_retention` is the edge that loops over them, one committed unit per batch (safe to run twice, or in
parallel: a row another run is deleting is skipped, not waited for).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Select, delete, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from monitor.db import run_unit, utcnow
from monitor.evaluators.models import EvalScore
from monitor.events.indexing import lock_search_index
from monitor.models import Event, EventSearch, Feedback, Project
from monitor.partitions.service import drop_partitions, expired_partitions, partition_rows, partitioned_tables
from monitor.pipeline.models import EventScore, EventVector


@dataclass
class Deleted:
    """Rows of one project removed (or, in a dry run, that would be)."""

    events: int = 0
    vectors: int = 0
    scores: int = 0
    feedback: int = 0

    def add(self, other: Deleted) -> None:
        self.events += other.events
        self.vectors += other.vectors
        self.scores += other.scores
        self.feedback += other.feedback

    @property
    def total(self) -> int:
        return self.events + self.vectors + self.scores + self.feedback


@dataclass
class RetentionReport:
    cutoff: datetime
    dry_run: bool
    batches: int = 0
    projects: dict[str, Deleted] = field(default_factory=dict)
    # Partitioned storage (monitor/partitions/): whole ranges dropped, and their rows per table (all projects)
    partitions_dropped: list[str] = field(default_factory=list)
    partition_rows: dict[str, int] = field(default_factory=dict)

    @property
    def totals(self) -> Deleted:
        out = Deleted()
        for counts in self.projects.values():
            out.add(counts)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"cutoff": self.cutoff.isoformat(), "dry_run": self.dry_run, "batches": self.batches,
                "projects": {slug: vars(c) for slug, c in self.projects.items()}, "totals": vars(self.totals),
                "partitions_dropped": self.partitions_dropped, "partition_rows": self.partition_rows}


def retention_cutoff(days: int, now: datetime | None = None) -> datetime:
    if days <= 0:
        raise ValueError(f"retention days must be at least 1, got {days} (0 or unset keeps everything)")
    return (now or utcnow()) - timedelta(days=days)


def _expired_events(project_id: int, cutoff: datetime) -> Select[Any]:
    return select(Event.id).where(Event.project_id == project_id, Event.ts < cutoff)


def _expired_feedback(project_id: int, cutoff: datetime) -> Select[Any]:
    return select(Feedback.id).where(Feedback.project_id == project_id, Feedback.ts < cutoff)


def expired_counts(session: Session, project_id: int, cutoff: datetime) -> Deleted:
    """What a run would delete for one project (the dry run)."""
    events = _expired_events(project_id, cutoff).subquery()

    def count(stmt: Any) -> int:
        return int(session.scalar(stmt) or 0)

    return Deleted(
        events=count(select(func.count()).select_from(events)),
        vectors=count(select(func.count()).select_from(EventVector).where(EventVector.event_id.in_(select(events.c.id)))),
        scores=count(select(func.count()).select_from(EventScore).where(EventScore.event_id.in_(select(events.c.id))))
        + count(select(func.count()).select_from(EvalScore).where(EvalScore.event_id.in_(select(events.c.id)))),
        feedback=count(select(func.count()).select_from(_expired_feedback(project_id, cutoff).subquery())),
    )


def _batch_ids(session: Session, stmt: Select[Any], ts: Any, batch_size: int) -> list[int]:
    # Oldest first along the (project_id, ts) index; rows locked by a concurrent run are skipped, not waited for.
    locked = stmt.order_by(ts).limit(batch_size).with_for_update(skip_locked=True)
    return list(session.scalars(locked))


def delete_expired_batch(session: Session, project_id: int, cutoff: datetime, batch_size: int) -> Deleted:
    """Delete up to `batch_size` expired events (their vectors and scores first) and as many expired feedback."""
    out = Deleted()
    lock_search_index(session)  # no indexer batch may write the vectors of events deleted here
    event_ids = _batch_ids(session, _expired_events(project_id, cutoff), Event.ts, batch_size)
    if event_ids:
        _rowcount(session, delete(EventSearch).where(EventSearch.event_id.in_(event_ids)))
        # Deleted explicitly (not only by ON DELETE CASCADE) so the run can say how many went.
        out.vectors = _rowcount(session, delete(EventVector).where(EventVector.event_id.in_(event_ids)))
        out.scores = _rowcount(session, delete(EventScore).where(EventScore.event_id.in_(event_ids))) + \
            _rowcount(session, delete(EvalScore).where(EvalScore.event_id.in_(event_ids)))
        out.events = _rowcount(session, delete(Event).where(Event.id.in_(event_ids)))
    feedback_ids = _batch_ids(session, _expired_feedback(project_id, cutoff), Feedback.ts, batch_size)
    if feedback_ids:
        out.feedback = _rowcount(session, delete(Feedback).where(Feedback.id.in_(feedback_ids)))
    return out


def _rowcount(session: Session, stmt: Any) -> int:
    return int(session.execute(stmt, execution_options={"synchronize_session": False}).rowcount)  # type: ignore[attr-defined]


def _projects(session: Session, project_ids: Iterable[int] | None) -> list[tuple[int, str]]:
    stmt = select(Project.id, Project.slug).order_by(Project.id)
    if project_ids is not None:
        stmt = stmt.where(Project.id.in_(list(project_ids)))
    return [(int(i), str(s)) for i, s in session.execute(stmt).all()]


def apply_retention(
    factory: sessionmaker[Session], *, days: int, batch_size: int = 5000, now: datetime | None = None,
    project_ids: Iterable[int] | None = None, dry_run: bool = False,
) -> RetentionReport:
    """Delete everything older than `days` (or count it, with `dry_run`), one committed batch at a time."""
    cutoff = retention_cutoff(days, now)
    report = RetentionReport(cutoff=cutoff, dry_run=dry_run)
    if not dry_run and project_ids is None:
        # Whole expired ranges go at once (partitioned Postgres only; a no-op elsewhere). A range holds every
        # project's rows, so a run limited to some projects leaves them to the DELETE below.
        by_range: dict[str, list[tuple[str, str]]] = {}
        for table, partition in run_unit(factory, partial(expired_partitions, cutoff=cutoff)):
            by_range.setdefault(partition.removeprefix(table), []).append((table, partition))
        for group in by_range.values():
            for table, partition in group:
                rows = run_unit(factory, partial(partition_rows, partition=partition))
                report.partition_rows[table] = report.partition_rows.get(table, 0) + rows
            run_unit(factory, partial(drop_partitions, partitions=[p for _, p in group]))
            report.partitions_dropped.extend(p for _, p in group)
    for project_id, slug in run_unit(factory, lambda s: _projects(s, project_ids)):
        if dry_run:
            report.projects[slug] = run_unit(factory, partial(expired_counts, project_id=project_id, cutoff=cutoff))
            continue
        done = Deleted()
        while True:
            batch = run_unit(factory, partial(
                delete_expired_batch, project_id=project_id, cutoff=cutoff, batch_size=batch_size))
            if batch.total == 0:
                break
            report.batches += 1
            done.add(batch)
            if batch.events < batch_size and batch.feedback < batch_size:
                break  # both ran dry (rows skipped as locked by a parallel run are that run's to delete)
        report.projects[slug] = done
    if run_unit(factory, lambda s: "events" in partitioned_tables(s.connection())):
        _forget_expired(factory, cutoff, batch_size * 10)  # not counted in `batches`: those are the DELETEs
    return report


def _forget_expired(factory: sessionmaker[Session], cutoff: datetime, batch_size: int) -> int:
    """Partitioned storage, after the drops and DELETEs: the dedupe keys of the expired events and feedback, and
    the drift cluster memberships and evaluator scores of events that went (no foreign key cascades from a
    partitioned table; a score made after the cutoff of an expired event goes in a later run), in
    batches (larger than the events': a key row is a few dozen bytes, and no writer touches an expired key)."""
    batches = 0
    statements = [f"DELETE FROM {keys} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {keys} WHERE ts < :cutoff "
                  "LIMIT :n FOR UPDATE SKIP LOCKED))" for keys in ("event_keys", "feedback_keys")]
    statements.append("DELETE FROM drift_cluster_events WHERE ctid = ANY(ARRAY("
                      "SELECT d.ctid FROM drift_cluster_events d "
                      "WHERE d.window_start < :cutoff AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = d.event_id) "
                      "LIMIT :n FOR UPDATE SKIP LOCKED))")
    statements.append("DELETE FROM eval_scores WHERE ctid = ANY(ARRAY("
                      "SELECT s.ctid FROM eval_scores s "
                      "WHERE s.created_at < :cutoff AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = s.event_id) "
                      "LIMIT :n FOR UPDATE SKIP LOCKED))")
    for sql in statements:
        while True:
            gone = run_unit(factory, lambda s, sql=sql: int(s.execute(  # type: ignore[misc]
                text(sql), {"cutoff": cutoff, "n": batch_size}).rowcount))
            batches += 1
            if gone < batch_size:
                break
    return batches


def retention_after_run(factory: sessionmaker[Session], now: datetime) -> None:
    """The in-process runner's retention (beat's `driftloop.retention` task in production)."""
    from monitor.settings import get_settings

    settings = get_settings()
    if settings.retention_days:
        apply_retention(factory, days=settings.retention_days, batch_size=settings.retention_batch_size, now=now)
