"""Tables of the metrics pipeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column

from monitor.db import UTCDateTime, utcnow
from monitor.models import Base, BigId, Event, JsonDoc


def _event_ts_of_row(context: Any) -> datetime | None:
    """Default of `event_ts` for a row written without one (single ORM adds; the bulk writers pass it): the
    event's own timestamp. On partitioned storage it routes the row, so it must not stay empty."""
    event_id = context.get_current_parameters()["event_id"]
    return context.connection.scalar(select(Event.ts).where(Event.id == event_id))


class EventVector(Base):
    """A text's embedding, stored once per (event, field, embedding model) as float16 bytes."""

    __tablename__ = "event_vectors"

    event_id: Mapped[int] = mapped_column(BigId, ForeignKey("events.id", ondelete="CASCADE"), primary_key=True)
    field: Mapped[str] = mapped_column(String(16), primary_key=True)  # "prompt" | "response"
    model_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    # The event's timestamp: the partition key when storage is partitioned by time (monitor/partitions/), so an
    # expired day's vectors go with its events. Null only in rows written before revision 0013.
    event_ts: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, default=_event_ts_of_row)


class MetricValue(Base):
    """One metric for one (project, segment, window). Upserted, so recomputing leaves one correct row."""

    __tablename__ = "metric_values"
    __table_args__ = (
        UniqueConstraint("project_id", "metric", "segment", "window_start", name="uq_metric_values_key"),
        Index("ix_metric_values_lookup", "project_id", "metric", "window_start"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(96))
    segment: Mapped[str] = mapped_column(String(320))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    window_end: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16))  # ok | insufficient | error
    n: Mapped[int] = mapped_column(Integer)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    p_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    flagged: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WindowState(Base):
    """Which windows need (re)computing. Late events mark their window dirty again."""

    __tablename__ = "window_states"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime())
    dirty_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    computed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    complete: Mapped[bool] = mapped_column(Boolean, default=False)


class ScanMark(Base):
    """How far (by arrival time) each project's events have been scanned for dirty windows."""

    __tablename__ = "scan_marks"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    scanned_until: Mapped[datetime] = mapped_column(UTCDateTime())


class EventScore(Base):
    """A per-text score (toxicity probability, sentiment), computed once per (event, field, scorer)."""

    __tablename__ = "event_scores"
    # "toxicity >= x" in the events explorer starts from the few high scores, not from every event.
    __table_args__ = (Index("ix_event_scores_scorer_score", "scorer", "field", "score"),)

    event_id: Mapped[int] = mapped_column(BigId, ForeignKey("events.id", ondelete="CASCADE"), primary_key=True)
    field: Mapped[str] = mapped_column(String(16), primary_key=True)
    scorer: Mapped[str] = mapped_column(String(96), primary_key=True)
    score: Mapped[float] = mapped_column(Float)
    event_ts: Mapped[datetime | None] = mapped_column(  # as EventVector.event_ts
        UTCDateTime(), nullable=True, default=_event_ts_of_row)


class DriftClusterEvent(Base):
    """An event of a window that fell in one of the clusters a drift explanation reported as grown.

    Written by the drift stage next to the explanation (monitor/pipeline/clusters.py), replaced when the
    window is recomputed, so "the events of this cluster" is one indexed query in the explorer.
    """

    __tablename__ = "drift_cluster_events"
    __table_args__ = (Index("ix_drift_cluster_events_event", "event_id"),)

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    metric: Mapped[str] = mapped_column(String(96), primary_key=True)
    cluster: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(BigId, ForeignKey("events.id", ondelete="CASCADE"), primary_key=True)


class DriftCalibration(Base):
    """How a drift detector's verdict is corrected for one reference (monitor/drift/thresholds.py).

    Keyed by a hash of the reference's event ids (and what else the calibration depends on), so an edited
    pinned range, a promotion or new first-N events give a new key and a fresh calibration, while every window
    that shares a reference, and every recomputation of a window, reads the same stored row.
    """

    __tablename__ = "drift_calibrations"
    __table_args__ = (
        UniqueConstraint("project_id", "segment", "field", "method", "reference_key", name="uq_drift_calibrations_key"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    segment: Mapped[str] = mapped_column(String(320))
    field: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(32))
    reference_key: Mapped[str] = mapped_column(String(64))
    n_reference: Mapped[int] = mapped_column(Integer)
    lam: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(32))
    calibration: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
