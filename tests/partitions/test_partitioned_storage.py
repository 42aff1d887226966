"""Partitioned storage on a real Postgres: ranges are created ahead, an event of any time is stored (DEFAULT, then
moved into its own range), a retry is stored once whichever partition it falls in (a client id is unique within a
partition, and across them when the server assigned its timestamp or every id is claimed), retention drops
whole expired ranges and keeps the rest, and the rows written in between keep working for the pipeline."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from monitor.db import run_unit, utcnow
from monitor.ingest.service import IngestCounts, ingest_events, ingest_feedback
from monitor.models import Event, Feedback
from monitor.partitions.bounds import bounds_of
from monitor.partitions.schema import TABLES
from monitor.partitions.service import list_partitions, partitioned_tables, upkeep
from monitor.pipeline.models import EventScore, EventVector
from monitor.pipeline.scores import scores_for
from monitor.pipeline.vectors import ensure_vectors
from monitor.projects.service import get_project
from monitor.retention.service import apply_retention, retention_cutoff
from monitor.schemas import EventIn, FeedbackIn
from tests.support.factories import make_key, unique_slug

NOW = utcnow()


def _project(factory: sessionmaker[Session]) -> int:
    def make(s: Session) -> int:
        return get_project(s, make_key(s, unique_slug("part")).project_slug).id

    return run_unit(factory, make)


def _ingest(factory: sessionmaker[Session], pid: int, events: list[EventIn]) -> IngestCounts:
    return run_unit(factory, lambda s: ingest_events(s, pid, events))


def _where(factory: sessionmaker[Session], pid: int, client_id: str) -> list[str]:
    """The partitions holding the events of this client id."""
    with factory() as s:
        return list(s.scalars(text("SELECT tableoid::regclass::text FROM events WHERE project_id = :p "
                                   "AND client_event_id = :c"), {"p": pid, "c": client_id}))


def test_the_growing_tables_are_partitioned_with_a_default(part_factory: sessionmaker[Session]) -> None:
    with part_factory() as s:
        assert {t.name for t in TABLES} <= partitioned_tables(s.connection())
        for spec in TABLES:
            assert spec.default_partition in {p.name for p in list_partitions(s, spec.name)}


def test_partitions_are_created_ahead_once(part_factory: sessionmaker[Session]) -> None:
    later = NOW + timedelta(days=30)  # beyond what the migration created
    first = run_unit(part_factory, lambda s: upkeep(s, later, "day", 3))
    with part_factory() as s:
        for spec in TABLES:
            ranges = {p.bounds for p in list_partitions(s, spec.name)}
            for d in range(-1, 4):
                assert bounds_of(later + timedelta(days=d), "day") in ranges, (spec.name, d)
    assert len(first.created) == 5 * len(TABLES)
    again = run_unit(part_factory, lambda s: upkeep(s, later, "day", 3))
    assert again.created == [] and again.moved_from_default == 0


def test_an_event_far_in_the_past_or_future_is_stored_then_moved_into_its_own_range(
    part_factory: sessionmaker[Session],
) -> None:
    pid = _project(part_factory)
    past, future = datetime(1990, 3, 1, 12, tzinfo=UTC), datetime(2150, 7, 1, 12, tzinfo=UTC)
    counts = _ingest(part_factory, pid, [EventIn(event_id="past", timestamp=past, prompt="old text"),
                                         EventIn(event_id="future", timestamp=future, prompt="new text")])
    assert counts == IngestCounts(2, 0)
    assert _where(part_factory, pid, "past") == ["events_default"] == _where(part_factory, pid, "future")
    # its embedding follows it, into the children's DEFAULT too
    vectors = run_unit(part_factory, lambda s: ensure_vectors(
        s, list(s.scalars(select(Event.id).where(Event.project_id == pid))), "prompt", "m",
        lambda texts: np.ones((len(texts), 4))))
    assert vectors == 2

    done = run_unit(part_factory, lambda s: upkeep(s, NOW, "day", 1))
    assert {"events_p19900301", "events_p21500701", "event_vectors_p19900301"} <= set(done.created)
    assert done.moved_from_default >= 4  # two events, two vectors
    assert _where(part_factory, pid, "past") == ["events_p19900301"]
    assert _where(part_factory, pid, "future") == ["events_p21500701"]
    with part_factory() as s:
        stored = s.execute(select(EventVector.event_ts, text("event_vectors.tableoid::regclass::text"))
                           .join(Event, Event.id == EventVector.event_id).where(Event.project_id == pid)
                           .order_by(EventVector.event_ts)).all()
        assert stored == [(past, "event_vectors_p19900301"), (future, "event_vectors_p21500701")]


def test_a_retry_is_stored_once_and_a_client_id_once_per_partition(part_factory: sessionmaker[Session]) -> None:
    pid = _project(part_factory)
    day1, day2 = NOW - timedelta(days=2), NOW - timedelta(days=1)
    assert _ingest(part_factory, pid, [EventIn(event_id="a", timestamp=day1, prompt="x"),
                                       EventIn(event_id="b", prompt="y"),
                                       EventIn(event_id="d", timestamp=day1, prompt="w")]) == IngestCounts(3, 0)
    # retries: the same client timestamp; a timestamp the server assigns anew; the same day at another time
    again = [EventIn(event_id="a", timestamp=day1, prompt="x"), EventIn(event_id="b", prompt="y"),
             EventIn(event_id="d", timestamp=day1 + timedelta(seconds=1), prompt="w"),
             EventIn(event_id="c", timestamp=day2, prompt="z"), EventIn(event_id="c", timestamp=day2, prompt="z")]
    assert _ingest(part_factory, pid, again) == IngestCounts(1, 4)
    for client_id in "abcd":
        assert len(_where(part_factory, pid, client_id)) == 1
    # only the id whose timestamp the server assigned was claimed in the keys table
    with part_factory() as s:
        assert list(s.scalars(text("SELECT client_event_id FROM event_keys WHERE project_id = :p"), {"p": pid})) == [
            "b"]
    # an id resent with an explicit timestamp in another partition is a new row (docs/scaling.md, "Sixth round")
    assert _ingest(part_factory, pid, [EventIn(event_id="a", timestamp=day2, prompt="x")]) == IngestCounts(1, 0)
    assert sorted(_where(part_factory, pid, "a")) == sorted(
        f"events_{bounds_of(d, 'day').suffix()}" for d in (day1, day2))
    fb = [FeedbackIn(feedback_id="f", event_id="a", timestamp=day1, score=1.0)]
    assert run_unit(part_factory, lambda s: ingest_feedback(s, pid, fb)) == IngestCounts(1, 0)
    assert run_unit(part_factory, lambda s: ingest_feedback(s, pid, fb)) == IngestCounts(0, 1)
    fb_day2 = [FeedbackIn(feedback_id="f", event_id="a", timestamp=day2, score=1.0)]
    assert run_unit(part_factory, lambda s: ingest_feedback(s, pid, fb_day2)) == IngestCounts(1, 0)


def test_claiming_every_id_keeps_an_id_once_whichever_partition_it_is_resent_to(
    part_factory: sessionmaker[Session],
) -> None:
    pid = _project(part_factory)
    day1, day2 = NOW - timedelta(days=2), NOW - timedelta(days=1)

    def ingest(events: list[EventIn]) -> IngestCounts:
        return run_unit(part_factory, lambda s: ingest_events(s, pid, events, claim_all_ids=True))

    assert ingest([EventIn(event_id="a", timestamp=day1, prompt="x"), EventIn(event_id="b", prompt="y")]) == \
        IngestCounts(2, 0)
    again = [EventIn(event_id="a", timestamp=day2, prompt="x"), EventIn(event_id="b", prompt="y"),
             EventIn(event_id="c", timestamp=day2, prompt="z"), EventIn(event_id="c", timestamp=day1, prompt="z")]
    assert ingest(again) == IngestCounts(1, 3)
    for client_id in "abc":
        assert len(_where(part_factory, pid, client_id)) == 1
    with part_factory() as s:
        assert s.scalar(select(Event.ts).where(Event.project_id == pid, Event.client_event_id == "a")) == day1
    fb = [FeedbackIn(feedback_id="f", event_id="a", timestamp=day1, score=1.0)]
    fb_retry = [FeedbackIn(feedback_id="f", event_id="a", timestamp=day2, score=1.0)]
    for batch, counts in ((fb, IngestCounts(1, 0)), (fb_retry, IngestCounts(0, 1))):
        assert run_unit(part_factory, lambda s, b=batch: ingest_feedback(s, pid, b, claim_all_ids=True)) == counts  # type: ignore[misc]


def test_every_partition_has_its_own_client_id_key(part_factory: sessionmaker[Session]) -> None:
    """Postgres copies only the parent's indexes to a new partition: each way one is made must add the key."""
    pid = _project(part_factory)
    far = NOW + timedelta(days=400)
    assert _ingest(part_factory, pid, [EventIn(event_id="far", timestamp=far, prompt="x")]) == IngestCounts(1, 0)
    run_unit(part_factory, lambda s: upkeep(s, far, "day", 3))  # moves "far" out of DEFAULT into its own range
    with part_factory() as s:
        for name in ("events", "feedback"):
            missing = list(s.scalars(text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = CAST(:t AS regclass) AND NOT EXISTS (SELECT 1 FROM pg_index x JOIN pg_class ic "
                "ON ic.oid = x.indexrelid WHERE x.indrelid = i.inhrelid AND x.indisunique "
                "AND ic.relname = c.relname || '_client_id_key')"), {"t": name}))
            assert missing == [], name
    assert _where(part_factory, pid, "far") == [f"events_{bounds_of(far, 'day').suffix()}"]
    assert _ingest(part_factory, pid, [EventIn(event_id="far", timestamp=far + timedelta(seconds=5))]) == \
        IngestCounts(0, 1)


@pytest.mark.parametrize("stamped", [False, True], ids=["server-timestamps", "client-timestamps"])
def test_concurrent_retries_store_each_event_once(part_factory: sessionmaker[Session], stamped: bool) -> None:
    pid = _project(part_factory)
    # without timestamps each try gets its own and the keys table decides; with them, the partition's own key
    batch = [EventIn(event_id=f"r{i}", prompt="p", timestamp=NOW - timedelta(minutes=i) if stamped else None)
             for i in range(50)]
    results: list[IngestCounts] = []
    first = part_factory()
    assert ingest_events(first, pid, batch) == IngestCounts(50, 0)  # not committed yet
    retry = threading.Thread(target=lambda: results.append(_ingest(part_factory, pid, batch)))
    retry.start()  # it waits on the first one's uncommitted ids (or runs after it: same outcome)
    first.commit()
    first.close()
    retry.join(timeout=60)
    assert results == [IngestCounts(0, 50)]
    with part_factory() as s:
        assert s.scalar(select(func.count()).select_from(Event).where(Event.project_id == pid)) == 50


def test_retention_drops_whole_expired_ranges_and_deletes_only_the_rest(part_factory: sessionmaker[Session]) -> None:
    pid = _project(part_factory)
    cutoff = retention_cutoff(30, NOW)
    old, straddling_old, straddling_new, fresh = (cutoff - timedelta(days=5), cutoff - timedelta(minutes=1),
                                                  cutoff + timedelta(minutes=1), NOW - timedelta(days=1))
    if bounds_of(straddling_old, "day") != bounds_of(straddling_new, "day"):  # the cutoff falls at midnight
        straddling_old, straddling_new = cutoff - timedelta(microseconds=1), cutoff
    run_unit(part_factory, lambda s: upkeep(s, old, "day", 40))  # ranges from `old` on, as beat made them
    stamps = {"old": old, "straddling-old": straddling_old, "straddling-new": straddling_new, "fresh": fresh}
    # every id claimed in the keys table, so that retention's purge of it shows
    run_unit(part_factory, lambda s: ingest_events(s, pid, [EventIn(event_id=k, timestamp=v, prompt=k, response=k)
                                                            for k, v in stamps.items()], claim_all_ids=True))
    run_unit(part_factory, lambda s: ingest_feedback(s, pid, [
        FeedbackIn(feedback_id=f"fb-{k}", event_id=k, timestamp=v, score=1.0) for k, v in stamps.items()]))

    def derived(s: Session) -> None:
        ids = list(s.scalars(select(Event.id).where(Event.project_id == pid)))
        ensure_vectors(s, ids, "prompt", "m", lambda texts: np.ones((len(texts), 4)))
        scores_for(s, ids, "response", "len", lambda texts: np.asarray([len(t) for t in texts], dtype=float))

    run_unit(part_factory, derived)
    old_range = f"{bounds_of(old, 'day').suffix()}"

    report = apply_retention(part_factory, days=30, now=NOW)
    for table in ("events", "feedback", "event_vectors", "event_scores"):
        assert f"{table}_{old_range}" in report.partitions_dropped
    assert report.partition_rows["events"] >= 1
    # the straddling range stays; its expired row went by DELETE
    slug = next(iter(k for k in report.projects if report.projects[k].events))
    assert report.projects[slug].events == 1 and report.projects[slug].vectors == 1
    with part_factory() as s:
        left = sorted(s.scalars(select(Event.client_event_id).where(Event.project_id == pid)))
        assert left == ["fresh", "straddling-new"]
        assert sorted(s.scalars(select(Feedback.client_feedback_id).where(Feedback.project_id == pid))) == [
            "fb-fresh", "fb-straddling-new"]
        kept = select(Event.id).where(Event.project_id == pid)
        assert s.scalar(select(func.count()).select_from(EventVector).where(EventVector.event_id.in_(kept))) == 2
        assert s.scalar(select(func.count()).select_from(EventScore).where(EventScore.event_id.in_(kept))) == 2
        for spec in TABLES:
            ends = [p.bounds.upper for p in list_partitions(s, spec.name) if p.bounds is not None]
            assert ends and min(ends) > cutoff, spec.name
        keys = sorted(s.scalars(text("SELECT client_event_id FROM event_keys WHERE project_id = :p"), {"p": pid}))
        assert keys == ["fresh", "straddling-new"]
    # an expired id may come back after retention, as with plain tables
    assert _ingest(part_factory, pid, [EventIn(event_id="old", timestamp=fresh, prompt="again")]) == IngestCounts(1, 0)
