"""The explorer's negative-feedback filter on partitioned storage (monitor/events/queries.py
`_negative_feedback`). Feedback is partitioned by its own time, which says nothing of its event's, so probing
it per event walked is an index lookup in every partition; the page is built from the keys read once instead."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from monitor.db import run_unit, utcnow
from monitor.events import queries
from monitor.events.filters import build_filters
from monitor.ingest.service import ingest_events, ingest_feedback
from monitor.models import Project
from monitor.projects.service import get_project
from monitor.schemas import EventIn, FeedbackIn
from tests.support.factories import make_key, unique_slug

NOW = utcnow()


def _seed(factory: sessionmaker[Session]) -> int:
    pid = run_unit(factory, lambda s: get_project(s, make_key(s, unique_slug("pexp")).project_slug).id)
    events = [EventIn(event_id=f"e{i}", timestamp=NOW - timedelta(days=4) + timedelta(hours=3 * i), prompt="p")
              for i in range(30)]
    run_unit(factory, lambda s: ingest_events(s, pid, events))
    # negative: every third event; feedback in later partitions than its event, and once a day *before* it
    feedback = [FeedbackIn(feedback_id=f"f{i}", event_id=f"e{i}", score=0.0 if i % 3 == 0 else 1.0,
                           timestamp=NOW - timedelta(days=4) + timedelta(hours=3 * i + (-24 if i == 9 else 30)))
                for i in range(30)]
    feedback.append(FeedbackIn(feedback_id="lbl", event_id="e10", label="thumbs_down"))
    run_unit(factory, lambda s: ingest_feedback(s, pid, feedback))
    return pid


def _project(session: Session, pid: int) -> Project:
    project = session.get(Project, pid)
    assert project is not None
    return project


def _page(session: Session, pid: int, **kw: Any) -> list[str]:
    project = _project(session, pid)
    return [e["event_id"] for e in queries.list_events(session, project, build_filters(**kw), limit=50).items]


def test_negative_feedback_page_reads_no_feedback_partition_per_event(part_factory: sessionmaker[Session],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    pid = _seed(part_factory)
    expected = [f"e{i}" for i in reversed(range(30)) if i % 3 == 0 or i == 10]
    # More negative keys than the explorer reads to list them directly: on plain tables, the per-event probe.
    monkeypatch.setattr(queries, "SPARSE_LIMIT", 1)
    with part_factory() as s:
        project = _project(s, pid)
        assert _page(s, pid, negative_feedback=True) == expected
        stmt = queries.page_query(s, project, build_filters(negative_feedback=True), limit=50)
        compiled = stmt.compile(dialect=s.get_bind().dialect, compile_kwargs={"render_postcompile": True})
        plan = "\n".join(str(r[0]) for r in s.connection().exec_driver_sql("EXPLAIN " + str(compiled),
                                                                             compiled.params))
        # The per-event probe was a SubPlan with an index scan on each feedback partition; the page query now
        # reads events only (the keys are one array parameter, hashed by Postgres).
        assert "feedback" not in plan, plan
        assert "ANY" in plan, plan
        # Too many keys to pass: the probe per event (and, with few, the short list) lists the same events.
        monkeypatch.setattr(queries, "PARTITIONED_KEYS", 0)
        assert _page(s, pid, negative_feedback=True) == expected
        monkeypatch.setattr(queries, "SPARSE_LIMIT", 2_000)
        assert _page(s, pid, negative_feedback=True) == expected
        day = {"start": (NOW - timedelta(days=3)).isoformat(), "end": (NOW - timedelta(days=2)).isoformat()}
        monkeypatch.setattr(queries, "PARTITIONED_KEYS", 100)
        within = _page(s, pid, negative_feedback=True, **day)
        assert within and set(within) < set(expected)
