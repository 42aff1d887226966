"""Upserting metric rows: the unique key (project, metric, segment, window) makes recomputation idempotent."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from monitor.db import utcnow
from monitor.encoding import finite, json_safe
from monitor.pipeline.models import MetricValue
from monitor.pipeline.ops import MetricPoint

_UPDATED = ("window_end", "status", "n", "value", "p_value", "threshold", "flagged", "details", "computed_at")


def upsert_points(
    session: Session,
    project_id: int,
    segment: str,
    window_start: datetime,
    window_end: datetime,
    points: Iterable[MetricPoint],
) -> int:
    now = utcnow()
    rows = [
        {
            "project_id": project_id, "metric": p.metric, "segment": segment, "window_start": window_start,
            "window_end": window_end, "status": p.status, "n": p.n, "value": finite(p.value),
            "p_value": finite(p.p_value), "threshold": finite(p.threshold), "flagged": p.flagged,
            "details": json_safe(p.details), "computed_at": now,
        }
        for p in points
    ]
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    ins = pg_insert(MetricValue) if dialect == "postgresql" else sqlite_insert(MetricValue)
    stmt = ins.on_conflict_do_update(
        index_elements=["project_id", "metric", "segment", "window_start"],
        set_={c: getattr(ins.excluded, c) for c in _UPDATED},
    )
    session.execute(stmt, rows)
    return len(rows)
