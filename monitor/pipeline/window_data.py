"""Loading one window's events (and the reference pool) as columns ready for metric functions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Select, func, select
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

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def scalar(self, name: str) -> np.ndarray:
        arr: np.ndarray = getattr(self, name)
        return arr


def _f(values: list[float | int | None]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _base_query(project_id: int) -> Select[Any]:
    return select(
        Event.id, Event.client_event_id, Event.model_version, Event.prompt_template_version, Event.meta,
        Event.latency_ms, Event.error, Event.prompt_tokens, Event.completion_tokens,
        func.length(Event.prompt), func.length(Event.response),
    ).where(Event.project_id == project_id)


def _frame(rows: list[Any]) -> WindowFrame:
    return WindowFrame(
        ids=np.array([r[0] for r in rows], dtype=np.int64),
        client_ids=[r[1] for r in rows],
        segments=[SegmentRow(r[2], r[3], r[4]) for r in rows],
        latency_ms=_f([r[5] for r in rows]),
        has_error=np.array([bool(r[6]) for r in rows], dtype=bool),
        prompt_tokens=_f([r[7] for r in rows]),
        completion_tokens=_f([r[8] for r in rows]),
        prompt_length=_f([r[9] for r in rows]),
        response_length=_f([r[10] for r in rows]),
    )


def load_window(session: Session, project_id: int, start: datetime, end: datetime) -> WindowFrame:
    stmt = _base_query(project_id).where(Event.ts >= start, Event.ts < end).order_by(Event.id)
    return _frame(list(session.execute(stmt)))


def load_reference(session: Session, project_id: int, cfg: ProjectConfig) -> WindowFrame:
    ref = cfg.reference
    stmt = _base_query(project_id)
    if isinstance(ref, RangeReference):
        stmt = stmt.where(Event.ts >= ref.start, Event.ts < ref.end).order_by(Event.id)
    elif isinstance(ref, FirstNReference):
        if ref.model_version is not None:
            stmt = stmt.where(Event.model_version == ref.model_version)
        stmt = stmt.order_by(Event.ts, Event.id).limit(ref.n)
    return _frame(list(session.execute(stmt)))


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
    ids = frame.client_ids
    for k in range(0, len(ids), 5000):
        chunk = ids[k : k + 5000]
        for eid, score, label in session.execute(
            select(Feedback.event_client_id, Feedback.score, Feedback.label).where(
                Feedback.project_id == project_id, Feedback.event_client_id.in_(chunk)
            )
        ):
            verdict = is_positive(score, label, threshold=cfg.positive_feedback_threshold, positive_labels=labels)
            if verdict is not None:
                where_pos.append(pos[eid])
                positive.append(verdict)
    return np.array(where_pos, dtype=np.int64), np.array(positive, dtype=bool)
