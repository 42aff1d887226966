"""Upserting metric rows: the unique key (project, metric, segment, window) makes recomputation idempotent."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from monitor.db import utcnow
from monitor.pipeline.models import MetricValue
from monitor.pipeline.ops import MetricPoint

_UPDATED = ("window_end", "status", "n", "value", "p_value", "threshold", "flagged", "details", "computed_at")


def _clean(x: float | None) -> float | None:
    # JSON and some drivers choke on NaN/inf; a metric that is not a number is stored as NULL.
    if x is None or not math.isfinite(x):
        return None
    return float(x)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _json_safe(value.item())
    return value


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
            "window_end": window_end, "status": p.status, "n": p.n, "value": _clean(p.value),
            "p_value": _clean(p.p_value), "threshold": _clean(p.threshold), "flagged": p.flagged,
            "details": _json_safe(p.details), "computed_at": now,
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
