"""Metric rows and the production trigger path (the runner's window-finish step) for alert tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from monitor.pipeline.ops import MetricPoint
from monitor.pipeline.store import upsert_points
from monitor.runner import process_window

T0 = datetime(2026, 11, 20, tzinfo=UTC)
H = timedelta(hours=1)


def window(i: int) -> datetime:
    return T0 + i * H


def drift_point(p_value: float | None, n: int = 200) -> MetricPoint:
    if p_value is None:
        return MetricPoint("drift.prompt.mmd", "insufficient", 10, details={"reason": "10 samples, need 100"})
    return MetricPoint("drift.prompt.mmd", "ok", n, value=0.05, p_value=p_value, threshold=0.01,
                       flagged=p_value < 0.01)


def write_window(factory: sessionmaker[Session], project_id: int, i: int, points: list[MetricPoint],
                 segment: str = "all") -> None:
    with factory() as s:
        upsert_points(s, project_id, segment, window(i), window(i + 1), points)
        s.commit()


def finish(factory: sessionmaker[Session], project_id: int, i: int) -> None:
    """What production runs after a window's stages: mark it computed, run the hooks (alert evaluation)."""
    process_window(project_id, window(i), factory=factory, only=[])
