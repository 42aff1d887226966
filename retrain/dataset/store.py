"""The database side of the training-set builder: production feedback in, a stored snapshot out.

`retrain.dataset.builder` is pure (rows in, snapshot out); this module feeds it from `feedback` joined to `events`
and stores the snapshot content-addressed under the data dir, so two jobs over the same data share one file
and a version's `dataset_hash` always names the exact bytes it was trained on.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from monitor.models import Event, Feedback
from retrain.dataset.builder import DatasetSnapshot, FeedbackRow, read_snapshot


def feedback_rows(session: Session, project_id: int, *, limit: int = 50_000) -> list[FeedbackRow]:
    """The newest `limit` feedback items that have their event, oldest first (a stable input order)."""
    stmt = (
        select(Feedback.id, Event.client_event_id, Event.prompt, Event.response, Feedback.score, Feedback.label,
               Feedback.corrected_response)
        .join(Event, and_(Event.project_id == Feedback.project_id,
                          Event.client_event_id == Feedback.event_client_id))
        .where(Feedback.project_id == project_id)
        .order_by(Feedback.id.desc())
        .limit(limit)
    )
    rows = sorted(session.execute(stmt).all(), key=lambda r: r[0])
    return [FeedbackRow(event_id=r[1], prompt=r[2], response=r[3], score=r[4], label=r[5],
                        corrected_response=r[6]) for r in rows]


def snapshot_path(data_dir: Path, project_id: int, content_hash: str) -> Path:
    return data_dir / "datasets" / f"project-{project_id}" / f"{content_hash}.jsonl"


def store_snapshot(snapshot: DatasetSnapshot, data_dir: Path, project_id: int) -> Path:
    """Write the snapshot once (content-addressed; an existing file with the right hash is kept)."""
    path = snapshot_path(data_dir, project_id, snapshot.content_hash)
    if path.is_file():
        try:
            if read_snapshot(path).content_hash == snapshot.content_hash:
                return path.resolve()
        except (ValueError, KeyError, TypeError):
            pass  # a damaged file is rewritten below
    return snapshot.write(path).resolve()
