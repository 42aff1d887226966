"""Reading metric rows back: time series, and the latest drift report with its explanation."""

from __future__ import annotations

import fnmatch
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.pipeline.models import MetricValue


def row_dict(r: MetricValue) -> dict[str, Any]:
    return {
        "metric": r.metric, "segment": r.segment, "window_start": r.window_start.isoformat(),
        "window_end": r.window_end.isoformat(), "status": r.status, "n": r.n, "value": r.value,
        "p_value": r.p_value, "threshold": r.threshold, "flagged": r.flagged, "details": r.details,
        "computed_at": r.computed_at.isoformat(),
    }


def query_metrics(
    session: Session, project_id: int, *, metric: str | None = None, segment: str | None = "all",
    start: datetime | None = None, end: datetime | None = None, limit: int = 1000,
) -> list[MetricValue]:
    stmt = select(MetricValue).where(MetricValue.project_id == project_id)
    if metric:
        stmt = stmt.where(MetricValue.metric.like(metric.replace("*", "%")) if "*" in metric
                          else MetricValue.metric == metric)
    if segment and is_glob(segment):
        stmt = stmt.where(MetricValue.segment.in_(matching_segments(session, project_id, segment)))
    elif segment:
        stmt = stmt.where(MetricValue.segment == segment)
    if start:
        stmt = stmt.where(MetricValue.window_start >= start)
    if end:
        stmt = stmt.where(MetricValue.window_start < end)
    stmt = stmt.order_by(MetricValue.window_start.desc(), MetricValue.metric, MetricValue.segment).limit(limit)
    return list(reversed(session.scalars(stmt).all()))


def is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def matching_segments(session: Session, project_id: int, pattern: str) -> list[str]:
    """Segment labels of the project that match a glob exactly as alert rules match them (fnmatchcase: `*`, `?`,
    `[...]`, case-sensitive). Labels are few per project (bounded by max_segment_values per key)."""
    labels = session.scalars(select(MetricValue.segment).where(MetricValue.project_id == project_id).distinct())
    return sorted(label for label in labels if fnmatch.fnmatchcase(label, pattern))


def latest_drift(session: Session, project_id: int, segment: str = "all",
                 at: datetime | None = None) -> list[MetricValue]:
    """Every drift metric of the most recent window that has computed drift rows for the segment; with `at`,
    of the window containing that time instead."""
    conditions = [MetricValue.project_id == project_id, MetricValue.segment == segment,
                  MetricValue.metric.like("drift.%")]
    if at is not None:
        conditions += [MetricValue.window_start <= at, MetricValue.window_end > at]
    else:
        conditions.append(MetricValue.status == "ok")
    latest = session.scalar(select(func.max(MetricValue.window_start)).where(*conditions))
    if latest is None:
        return []
    return list(session.scalars(
        select(MetricValue).where(
            MetricValue.project_id == project_id, MetricValue.segment == segment,
            MetricValue.metric.like("drift.%"), MetricValue.window_start == latest,
        ).order_by(MetricValue.metric)
    ))
