"""The scheduler's scan on both backends: dirty windows go out once, an open window is recomputed at most
every `min_interval` while events keep arriving, and a closed one gets its final computation at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from monitor.ingest.service import ingest_events
from monitor.models import Event
from monitor.pipeline.models import WindowState
from monitor.pipeline.scheduler import finish_window, scan
from monitor.projects.service import get_or_create_project
from monitor.schemas import EventIn
from tests.support.factories import unique_slug

T0 = datetime(2026, 11, 30, 10, tzinfo=UTC)  # window [10:00, 10:05)
MINUTE = timedelta(minutes=1)


def _arrive(s: Session, pid: int, tag: str, at: datetime) -> None:
    """Events stamped inside the first window, received at `at`."""
    ingest_events(s, pid, [EventIn(event_id=f"{tag}-{i}", timestamp=T0 + timedelta(seconds=i), prompt="hi")
                           for i in range(3)])
    s.execute(update(Event).where(Event.project_id == pid, Event.client_event_id.like(f"{tag}-%"))
              .values(received_at=at))


def _project(s: Session) -> int:
    project = get_or_create_project(s, unique_slug("sched"))
    project.config = {"window_seconds": 300}
    s.flush()
    return project.id


def _cycle(s: Session, pid: int, now: datetime, interval: timedelta) -> list[datetime]:
    """One scan at `now`; every dispatched window is computed at once (started and finished at `now`)."""
    jobs = scan(s, now, [pid], min_interval=interval)
    for job in jobs:
        finish_window(s, pid, job.window_start, now)
    return [j.window_start for j in jobs]


def test_an_open_window_waits_for_its_interval_and_a_closed_one_does_not(session: Session) -> None:
    pid = _project(session)
    _arrive(session, pid, "a", T0 + timedelta(seconds=5))
    assert _cycle(session, pid, T0 + timedelta(seconds=10), MINUTE) == [T0]  # first computation: at once
    _arrive(session, pid, "b", T0 + timedelta(seconds=20))
    assert _cycle(session, pid, T0 + timedelta(seconds=25), MINUTE) == []  # computed 15 s ago: waits
    state = session.get(WindowState, (pid, T0))
    assert state is not None and state.dirty_since is not None  # still dirty, nothing lost
    assert _cycle(session, pid, T0 + timedelta(seconds=70), MINUTE) == [T0]  # the interval passed
    _arrive(session, pid, "c", T0 + timedelta(seconds=80))
    # The window closes at 10:05; the next scan after that sends its final computation, however recent the last.
    assert _cycle(session, pid, T0 + timedelta(seconds=85), MINUTE) == []
    assert _cycle(session, pid, T0 + timedelta(seconds=301), MINUTE) == [T0]
    state = session.get(WindowState, (pid, T0))
    assert state is not None and state.complete and state.dirty_since is None


def test_no_interval_recomputes_at_every_scan(session: Session) -> None:
    pid = _project(session)
    _arrive(session, pid, "a", T0 + timedelta(seconds=5))
    assert _cycle(session, pid, T0 + timedelta(seconds=10), timedelta(0)) == [T0]
    _arrive(session, pid, "b", T0 + timedelta(seconds=12))
    assert _cycle(session, pid, T0 + timedelta(seconds=15), timedelta(0)) == [T0]
