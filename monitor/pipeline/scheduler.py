"""Finding the windows to (re)compute, and marking them done.

`scan` looks at events by *arrival* time since the last scan (with an overlap, so a transaction that
committed late is not missed) and marks the windows their timestamps fall in as dirty: late events re-open
their window. Windows that closed since their last computation are marked dirty once more, so every window
gets a final, complete computation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, cast, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from monitor.models import Event, Project
from monitor.pipeline.config import project_config
from monitor.pipeline.models import ScanMark, WindowState

SCAN_OVERLAP = timedelta(minutes=2)
# A dispatched window whose job has not finished within this lease is dispatched again (its worker died).
DISPATCH_LEASE = timedelta(minutes=15)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class WindowJob:
    project_id: int
    window_start: datetime


def _bucket(session: Session, seconds: int) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.floor(func.extract("epoch", Event.ts) / seconds), Integer)
    return cast(func.strftime("%s", Event.ts), Integer) / seconds


def _aware(ts: datetime) -> datetime:
    # Aggregates bypass the column type on SQLite, which hands back naive (UTC) datetimes.
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts


def _upsert_dirty(session: Session, project_id: int, starts: list[datetime], seconds: int, now: datetime) -> None:
    if not starts:
        return
    rows = [
        {"project_id": project_id, "window_start": s, "window_end": s + timedelta(seconds=seconds),
         "dirty_since": now, "complete": False}
        for s in starts
    ]
    ins = pg_insert(WindowState) if session.get_bind().dialect.name == "postgresql" else sqlite_insert(WindowState)
    # A window already dirty keeps its older dirty_since; a clean one becomes dirty now.
    session.execute(
        ins.on_conflict_do_update(
            index_elements=["project_id", "window_start"],
            set_={"dirty_since": func.coalesce(WindowState.dirty_since, ins.excluded.dirty_since)},
        ),
        rows,
    )


def scan(
    session: Session, now: datetime, project_ids: list[int] | None = None, *,
    min_interval: timedelta = timedelta(0),
) -> list[WindowJob]:
    """Mark dirty windows for every project (or the given ones); return the dirty windows to dispatch now.

    A returned window is stamped `dispatched_at`, so the next scan does not dispatch it again while its job
    runs (unless the lease runs out: then its worker is presumed dead and the window goes out again). A window
    still open that was computed less than `min_interval` ago waits (it stays dirty): under heavy traffic every
    recomputation reads the whole window, and back-to-back ones would keep a worker busy for little news.
    """
    projects = session.scalars(select(Project) if project_ids is None else
                               select(Project).where(Project.id.in_(project_ids))).all()
    for project in projects:
        seconds = project_config(project).window_seconds
        mark = session.get(ScanMark, project.id)
        since = (mark.scanned_until - SCAN_OVERLAP) if mark else EPOCH
        bucket = _bucket(session, seconds)
        arrivals = session.execute(
            select(bucket, func.max(Event.received_at)).where(
                Event.project_id == project.id, Event.received_at > since, Event.received_at <= now
            ).group_by(bucket)
        ).all()
        computed = dict(
            session.execute(
                select(WindowState.window_start, WindowState.computed_at).where(WindowState.project_id == project.id)
            ).all()
        )
        starts = []
        for b, last_arrival in arrivals:
            start = EPOCH + timedelta(seconds=int(b) * seconds)
            done_at = computed.get(start)
            # The scan overlap sees some events twice; only arrivals after the last computation dirty a window.
            if done_at is None or _aware(last_arrival) > done_at:
                starts.append(start)
        _upsert_dirty(session, project.id, starts, seconds, now)
        # Windows that closed since they were last computed get their final, complete computation.
        session.execute(
            update(WindowState)
            .where(WindowState.project_id == project.id, WindowState.complete.is_(False),
                   WindowState.window_end <= now, WindowState.dirty_since.is_(None))
            .values(dirty_since=now)
        )
        if mark is None:
            session.add(ScanMark(project_id=project.id, scanned_until=now))
        else:
            mark.scanned_until = max(mark.scanned_until, now)
    wanted = [p.id for p in projects]
    due = (
        select(WindowState)
        .where(WindowState.project_id.in_(wanted), WindowState.dirty_since.is_not(None))
        .where((WindowState.dispatched_at.is_(None)) | (WindowState.dispatched_at < now - DISPATCH_LEASE))
        .where(WindowState.computed_at.is_(None) | (WindowState.window_end <= now)
               | (WindowState.computed_at <= now - min_interval))
        .order_by(WindowState.window_start)
    )
    jobs = []
    for state in session.scalars(due):
        state.dispatched_at = now
        jobs.append(WindowJob(state.project_id, state.window_start))
    return jobs


def finish_window(session: Session, project_id: int, window_start: datetime, started_at: datetime) -> None:
    """Mark a window computed. If new events dirtied it after this run started, it stays dirty."""
    state = session.get(WindowState, (project_id, window_start))
    if state is None:
        return
    state.computed_at = started_at
    state.dispatched_at = None
    state.complete = state.window_end <= started_at
    if state.dirty_since is not None and state.dirty_since <= started_at:
        state.dirty_since = None
