"""Erasure on the partitioned schema (DRIFTLOOP_PARTITION_INTERVAL=day): a session whose events, vectors, scores
and feedback lie in several day partitions (and the DEFAULT one) is erased from every one of them, with its
evaluator scores and cluster memberships; its client ids can be sent again; and `pg_dump` of the whole database
no longer holds its text."""

from __future__ import annotations

import subprocess
from datetime import timedelta

import numpy as np
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from monitor.db import run_unit, utcnow
from monitor.evaluators.models import EvalScore
from monitor.ingest.service import IngestCounts, ingest_events, ingest_feedback
from monitor.models import Event, Feedback
from monitor.partitions.service import upkeep
from monitor.pipeline.models import DriftClusterEvent, EventScore, EventVector
from monitor.pipeline.scores import scores_for
from monitor.pipeline.vectors import ensure_vectors
from monitor.privacy.erasure import Selector
from monitor.projects.service import get_project
from monitor.schemas import EventIn, FeedbackIn
from retrain.registry.erasure import erase
from tests.support.factories import make_key, unique_slug

NOW = utcnow()
SECRET = "PARTITIONED-ERASE-ME"


def _seed(factory: sessionmaker[Session]) -> int:
    def make(s: Session) -> int:
        return get_project(s, make_key(s, unique_slug("perase")).project_slug).id

    pid = run_unit(factory, make)
    # three days apart, and one far in the past (the DEFAULT partition until upkeep moves it)
    times = [NOW - timedelta(days=d) for d in (0, 1, 2)] + [NOW - timedelta(days=4000)]
    events = [EventIn(event_id=f"gone-{i}", session_id="user-42", timestamp=t, prompt=f"{SECRET} q{i}",
                      response=f"{SECRET} a{i}") for i, t in enumerate(times)]
    events += [EventIn(event_id=f"kept-{i}", session_id="user-7", timestamp=t, prompt=f"kept q{i}",
                       response="kept a") for i, t in enumerate(times[:2])]
    assert run_unit(factory, lambda s: ingest_events(s, pid, events)) == IngestCounts(6, 0)
    feedback = [FeedbackIn(feedback_id="fb-gone", event_id="gone-1", timestamp=times[1], score=0,
                           corrected_response=f"{SECRET} fix"),
                FeedbackIn(feedback_id="fb-kept", event_id="kept-1", timestamp=times[1], score=1)]
    assert run_unit(factory, lambda s: ingest_feedback(s, pid, feedback)) == IngestCounts(2, 0)

    def derived(s: Session) -> None:
        rows = s.execute(select(Event.id, Event.ts).where(Event.project_id == pid)).all()
        ids = [r[0] for r in rows]
        ensure_vectors(s, ids, "prompt", "m", lambda texts: np.ones((len(texts), 4)))
        scores_for(s, ids, "response", "len", lambda texts: np.asarray([len(t) for t in texts], dtype=float))
        for event_id, ts in rows:
            s.add(EvalScore(event_id=event_id, evaluator="refusal", version="v1", project_id=pid, value=0.1,
                            explanation="quotes the response"))
            s.add(DriftClusterEvent(project_id=pid, window_start=ts, metric="drift.prompt", cluster=1,
                                     event_id=event_id))

    run_unit(factory, derived)
    run_unit(factory, lambda s: upkeep(s, NOW, "day", 1))  # ranges for every day; the old event leaves DEFAULT
    return pid


def _counts(s: Session, pid: int, event_ids: list[int]) -> dict[str, int]:
    """Rows per table for these events, counted without a join to `events` (a row left behind by an erased event
    must be seen: the partitioned tables have no foreign keys to cascade)."""
    out = {}
    for model in (Event, Feedback, EvalScore, DriftClusterEvent):
        out[model.__name__] = int(s.scalar(select(func.count()).select_from(model).where(model.project_id == pid)) or 0)
    for keyed in (EventVector, EventScore):
        out[keyed.__name__] = int(s.scalar(select(func.count()).select_from(keyed)
                                           .where(keyed.event_id.in_(event_ids))) or 0)
    return out


def test_erase_a_session_across_partitions(part_factory: sessionmaker[Session], part_url: str) -> None:
    pid = _seed(part_factory)
    with part_factory() as s:
        homes = set(s.scalars(text("SELECT DISTINCT tableoid::regclass::text FROM events WHERE project_id = :p "
                                   "AND session_id = 'user-42'"), {"p": pid}))
        assert len(homes) == 4 and "events_default" not in homes  # four partitions, none of them DEFAULT
        event_ids = list(s.scalars(select(Event.id).where(Event.project_id == pid)))
        before = _counts(s, pid, event_ids)
    assert before == {"Event": 6, "Feedback": 2, "EventVector": 6, "EventScore": 6, "EvalScore": 6,
                      "DriftClusterEvent": 6}

    dry = erase(part_factory, pid, Selector(session_id="user-42"), actor="dpo", dry_run=True)
    assert (dry.events.events, dry.events.vectors, dry.events.scores, dry.events.feedback) == (4, 4, 8, 1)

    done = erase(part_factory, pid, Selector(session_id="user-42"), actor="dpo", batch_size=3)
    with part_factory() as s:
        assert _counts(s, pid, event_ids) == {"Event": 2, "Feedback": 1, "EventVector": 2, "EventScore": 2,
                                              "EvalScore": 2, "DriftClusterEvent": 2}
    assert (done.events.events, done.events.vectors, done.events.scores, done.events.feedback) == (4, 4, 8, 1)
    assert done.events.batches == 2
    dump = subprocess.run(["pg_dump", "--no-owner", part_url.replace("postgresql+psycopg", "postgresql")],
                          check=True, capture_output=True, text=True).stdout
    assert "kept q0" in dump and SECRET not in dump

    # the dedupe keys went too: the app may send the same ids again, and they are stored again
    again = [EventIn(event_id="gone-0", session_id="user-42", timestamp=NOW, prompt="new text")]
    assert run_unit(part_factory, lambda s: ingest_events(s, pid, again)) == IngestCounts(1, 0)
