"""Loading one window's events (and the reference pool) as columns ready for metric functions."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Select, Text, cast, func, select
from sqlalchemy.orm import Session

from monitor.models import Event, Feedback
from monitor.pipeline.config import FirstNReference, ProjectConfig, RangeReference
from monitor.pipeline.ops import is_positive
from monitor.pipeline.segments import SegmentRow


@dataclass(frozen=True)
class WindowFrame:
    """Column arrays over the events of a window (or of the reference), aligned by position."""

    ids: np.ndarray
    client_ids: list[str]
    segments: list[SegmentRow]
    latency_ms: np.ndarray
    has_error: np.ndarray
    prompt_tokens: np.ndarray
    completion_tokens: np.ndarray
    prompt_length: np.ndarray
    response_length: np.ndarray
    window: tuple[datetime, datetime] | None = None  # the [start, end) it holds; None for the reference pool

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def scalar(self, name: str) -> np.ndarray:
        arr: np.ndarray = getattr(self, name)
        return arr


_PARTITION = 20_000  # rows fetched and converted at a time: a window of millions is never held as row objects


def _base_query(project_id: int) -> Select[Any]:
    return select(
        Event.id, Event.client_event_id, Event.model_version, Event.prompt_template_version,
        cast(Event.meta, Text),  # parsed once per distinct value below, not once per event
        Event.latency_ms, func.coalesce(func.length(Event.error), 0) > 0, Event.prompt_tokens, Event.completion_tokens,
        func.length(Event.prompt), func.length(Event.response),
    ).where(Event.project_id == project_id)


def _floats(values: Sequence[Any]) -> np.ndarray:
    return np.array(values, dtype=np.float64)  # None becomes NaN


def _frame(session: Session, stmt: Select[Any], window: tuple[datetime, datetime] | None = None) -> WindowFrame:
    """Columns built a partition at a time; events with the same segment fields share one SegmentRow."""
    columns: list[list[np.ndarray]] = [[] for _ in range(7)]
    client_ids: list[str] = []
    segments: list[SegmentRow] = []
    interned: dict[tuple[str | None, str | None, str | None], SegmentRow] = {}
    # Core, not ORM execution: the rows are plain columns, and ORM row loading cost a third of the time.
    for part in session.connection().execute(stmt.execution_options(yield_per=_PARTITION)).partitions():
        ids, cids, versions, templates, metas, latency, error, ptok, ctok, plen, rlen = zip(*part, strict=True)
        client_ids.extend(cids)
        for key in zip(versions, templates, metas, strict=True):
            row = interned.get(key)
            if row is None:
                row = interned[key] = SegmentRow(key[0], key[1], json.loads(key[2]) if key[2] is not None else None)
            segments.append(row)
        for out, values, dtype in zip(columns, (ids, latency, error, ptok, ctok, plen, rlen),
                                      (np.int64, np.float64, bool, np.float64, np.float64, np.float64, np.float64),
                                      strict=True):
            out.append(np.array(values, dtype=dtype) if dtype is not np.float64 else _floats(values))

    def joined(k: int, dtype: Any) -> np.ndarray:
        return np.concatenate(columns[k]) if columns[k] else np.zeros(0, dtype=dtype)

    return WindowFrame(
        ids=joined(0, np.int64), client_ids=client_ids, segments=segments, latency_ms=joined(1, np.float64),
        has_error=joined(2, bool), prompt_tokens=joined(3, np.float64), completion_tokens=joined(4, np.float64),
        prompt_length=joined(5, np.float64), response_length=joined(6, np.float64), window=window,
    )


def load_window(session: Session, project_id: int, start: datetime, end: datetime) -> WindowFrame:
    stmt = _base_query(project_id).where(Event.ts >= start, Event.ts < end).order_by(Event.id)
    return _frame(session, stmt, (start, end))


def load_reference(session: Session, project_id: int, cfg: ProjectConfig) -> WindowFrame:
    ref = cfg.reference
    stmt = _base_query(project_id)
    if isinstance(ref, RangeReference):
        stmt = stmt.where(Event.ts >= ref.start, Event.ts < ref.end).order_by(Event.id)
    elif isinstance(ref, FirstNReference):
        if ref.model_version is not None:
            stmt = stmt.where(Event.model_version == ref.model_version)
        stmt = stmt.order_by(Event.ts, Event.id).limit(ref.n)
    return _frame(session, stmt)


def feedback_positive(
    session: Session, project_id: int, frame: WindowFrame, cfg: ProjectConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(position of the event in `frame` for each feedback item, whether it was positive)."""
    if len(frame) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    pos = {cid: i for i, cid in enumerate(frame.client_ids)}
    labels = {x.lower() for x in cfg.positive_labels}
    where_pos: list[int] = []
    positive: list[bool] = []
    for eid, score, label in _feedback_of(session, project_id, frame):
        at = pos.get(eid)
        if at is None:  # an event committed after the frame was loaded: it is not part of this computation
            continue
        verdict = is_positive(score, label, threshold=cfg.positive_feedback_threshold, positive_labels=labels)
        if verdict is not None:
            where_pos.append(at)
            positive.append(verdict)
    return np.array(where_pos, dtype=np.int64), np.array(positive, dtype=bool)


def _feedback_of(session: Session, project_id: int, frame: WindowFrame) -> Iterator[tuple[str, Any, Any]]:
    """(event client id, score, label) of the feedback on the frame's events."""
    fields = (Feedback.event_client_id, Feedback.score, Feedback.label)
    if frame.window is not None:
        # One join over the window, not thousands of IN-lists of client ids (a window can hold millions).
        start, end = frame.window
        stmt = select(*fields).join(Event, (Event.project_id == Feedback.project_id)
                                    & (Event.client_event_id == Feedback.event_client_id)).where(
            Feedback.project_id == project_id, Event.ts >= start, Event.ts < end)
        for eid, score, label in session.execute(stmt.execution_options(yield_per=_PARTITION)):
            yield eid, score, label
        return
    ids = frame.client_ids
    for k in range(0, len(ids), 5000):
        for eid, score, label in session.execute(select(*fields).where(
                Feedback.project_id == project_id, Feedback.event_client_id.in_(ids[k : k + 5000]))):
            yield eid, score, label
