"""Full-text search with its index off the ingest path (monitor/events/indexing.py, monitor/events/search.py):
an event is found the moment it is committed, before and after the indexer wrote its row; the watermark never
passes an id a still-open writer may commit; deleting a project or erasing events leaves no search rows.

On a database of this module's own (partitioned, as every new Postgres database is): the indexer's watermark is
global, and other tests' open transactions on a shared database would hold it back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from monitor import migrations
from monitor.db import make_engine
from monitor.events.filters import build_filters
from monitor.events.indexing import index_pending, indexed_through
from monitor.events.queries import list_events
from monitor.models import Event, EventSearch, Feedback, Project
from monitor.partitions.service import partitioned_tables
from monitor.privacy.erasure import Selector, erase_events
from monitor.projects.deletion import delete_project
from monitor.projects.service import get_project
from tests.support import services
from tests.support.factories import make_key

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


@pytest.fixture(scope="module")
def factory(_servers: tuple[str, str], worker_id: str) -> Iterator[sessionmaker[Session]]:
    name = f"driftloop_search_{services.checkout_tag()}_{worker_id}"[:63]
    url = services.recreate_database(_servers[0], name)
    migrations.upgrade(url)
    engine = make_engine(url)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()
    services.drop_database(_servers[0], name)


def _project(factory: sessionmaker[Session]) -> Project:
    with factory() as s:
        project = get_project(s, make_key(s).project_slug)
        s.commit()
        return project


def _add(factory: sessionmaker[Session], project: Project, texts: list[str], tag: str) -> None:
    with factory() as s:
        s.execute(insert(Event), [{"project_id": project.id, "client_event_id": f"{tag}{i}",
                                   "ts": T0 + timedelta(seconds=i), "prompt": t, "response": "ok"}
                                  for i, t in enumerate(texts)])
        s.commit()


def _found(factory: sessionmaker[Session], project: Project, q: str) -> list[str]:
    with factory() as s:
        return sorted(e["event_id"] for e in list_events(s, project, build_filters(q=q), limit=200).items)


def _search_rows(factory: sessionmaker[Session], project: Project) -> int:
    with factory() as s:
        return int(s.scalar(select(func.count()).select_from(EventSearch).where(
            EventSearch.project_id == project.id)) or 0)


def test_a_new_event_is_found_before_and_after_it_is_indexed(factory: sessionmaker[Session]) -> None:
    with factory() as s:
        assert "event_search" in partitioned_tables(s.connection())
    project = _project(factory)
    _add(factory, project, ["my kettle is broken", "refund please", "kettles again"], "a")
    assert _found(factory, project, "kettle") == ["a0", "a2"]  # not indexed yet: read from events
    assert _search_rows(factory, project) == 0
    done = index_pending(factory)
    assert _search_rows(factory, project) == 3
    with factory() as s:
        top = s.scalar(select(func.max(Event.id)))
        assert done.indexed_through == indexed_through(s) == top
    assert _found(factory, project, "kettle") == ["a0", "a2"]  # now from event_search alone
    _add(factory, project, ["a kettle that leaks"], "b")  # past the watermark again
    assert _found(factory, project, "kettle") == ["a0", "a2", "b0"]
    assert _found(factory, project, "refunds") == ["a1"]  # stemmed, from the index


def test_the_watermark_waits_for_a_writer_still_open(factory: sessionmaker[Session]) -> None:
    project = _project(factory)
    slow = factory()
    # a collector's transaction that took its id and has not committed yet
    slow.execute(insert(Event), [{"project_id": project.id, "client_event_id": "slow", "ts": T0,
                                  "prompt": "zeppelin arrives late", "response": "ok"}])
    slow_id = slow.scalar(select(Event.id).where(Event.client_event_id == "slow"))
    try:
        _add(factory, project, ["zeppelin on time"], "fast")  # a higher id, committed first
        done = index_pending(factory)
        assert done.indexed_through < slow_id  # it may not pass an id that can still appear
        assert _found(factory, project, "zeppelin") == ["fast0"]
        slow.commit()
    finally:
        slow.close()
    assert _found(factory, project, "zeppelin") == ["fast0", "slow"]  # committed: found at once, unindexed
    index_pending(factory)
    assert _search_rows(factory, project) == 2
    with factory() as s:
        assert indexed_through(s) >= int(s.scalar(select(func.max(Event.id))) or 0)
    assert _found(factory, project, "zeppelin") == ["fast0", "slow"]


def test_deleting_a_project_leaves_no_events_keys_or_search_rows(factory: sessionmaker[Session]) -> None:
    gone, kept = _project(factory), _project(factory)
    for p in (gone, kept):
        _add(factory, p, ["password reset", "where is my parcel"], "d")
    with factory() as s:
        s.add(Feedback(project_id=gone.id, client_feedback_id="f", event_client_id="d0", ts=T0, score=0.0))
        s.commit()
    index_pending(factory)
    assert _search_rows(factory, gone) == 2
    with factory() as s:
        assert delete_project(s, gone.id).events == 2
        s.commit()
    with factory() as s:
        for table, col in (("events", "project_id"), ("event_search", "project_id"), ("event_keys", "project_id"),
                           ("feedback", "project_id")):
            n = s.connection().exec_driver_sql(f"SELECT count(*) FROM {table} WHERE {col} = %(p)s",
                                               {"p": gone.id}).scalar_one()
            assert n == 0, table
        assert s.get(Project, gone.id) is None
    assert _search_rows(factory, kept) == 2
    assert _found(factory, kept, "parcel") == ["d1"]


def test_erasure_takes_the_search_rows(factory: sessionmaker[Session]) -> None:
    project = _project(factory)
    _add(factory, project, ["my secret fjord", "fjord trip"], "x")
    index_pending(factory)
    assert _search_rows(factory, project) == 2
    erase_events(factory, project.id, Selector(event_ids=("x0",)))
    assert _search_rows(factory, project) == 1
    assert _found(factory, project, "fjord") == ["x1"]
