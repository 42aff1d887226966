"""The two ways a batch reaches the table (monitor/ingest/service.py): a new batch by COPY straight into it, a batch
holding an id already stored by the careful staging path, which keeps only the new ids. Both inside the caller's
transaction, which stays usable after the fallback. Postgres and SQLite."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.ingest.service import IngestCounts, ingest_events, ingest_feedback
from monitor.models import Event, Feedback
from monitor.projects.service import get_project
from monitor.schemas import EventIn, FeedbackIn
from tests.support.factories import event_dict, make_key


def _events(n: int) -> list[EventIn]:
    return [EventIn.model_validate(event_dict(metadata={"locale": "en", "n": [i, 1.5, None], "ü": {"deep": True}}))
            for i in range(n)]


def _stored(session: Session, project_id: int) -> dict[str, dict[str, object] | None]:
    rows = session.execute(select(Event.client_event_id, Event.meta).where(Event.project_id == project_id))
    return {cid: meta for cid, meta in rows}


def test_new_retried_and_mixed_batches_store_each_id_once(session: Session) -> None:
    project_id = get_project(session, make_key(session).project_slug).id
    first, second = _events(30), _events(20)
    assert ingest_events(session, project_id, first) == IngestCounts(30, 0)  # all new
    assert ingest_events(session, project_id, first) == IngestCounts(0, 30)  # a retry
    mixed = first[:10] + second + second[:5]  # stored ids, new ids, and new ids twice in the batch
    assert ingest_events(session, project_id, mixed) == IngestCounts(20, 15)
    assert ingest_events(session, project_id, _events(7)) == IngestCounts(7, 0)  # the transaction goes on
    session.commit()
    stored = _stored(session, project_id)
    assert len(stored) == 57
    assert stored[first[3].event_id] == {"locale": "en", "n": [3, 1.5, None], "ü": {"deep": True}}


def test_feedback_takes_the_same_paths(session: Session) -> None:
    project_id = get_project(session, make_key(session).project_slug).id
    items = [FeedbackIn(feedback_id=f"f{i}", event_id=f"e{i}", score=1.0, metadata={"k": i}) for i in range(12)]
    assert ingest_feedback(session, project_id, items) == IngestCounts(12, 0)
    retried = [*items[6:], FeedbackIn(feedback_id="f99", event_id="e1", label="up")]
    assert ingest_feedback(session, project_id, retried) == IngestCounts(1, 6)
    session.commit()
    assert session.scalar(select(func.count()).select_from(Feedback).where(Feedback.project_id == project_id)) == 13
