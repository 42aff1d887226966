"""Which events a drift explanation put in each cluster that grew: stored so the explorer can list them.

The explanation itself (shares, lift, example prompts) stays in the metric row's details; the membership can
be thousands of ids, so it gets rows of its own, replaced as a whole when the window is recomputed (the
explanation is seeded by the row key, so a recomputation of the same data stores the same members).
Members are of the sample the detector compared (at most `drift_max_samples` of the window).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from monitor.pipeline.models import DriftClusterEvent


def store_cluster_members(session: Session, project_id: int, window_start: datetime, metric: str,
                          clusters: Iterable[tuple[int, Sequence[int]]]) -> int:
    """Replace the members of the window's grown clusters for `metric`; returns how many rows were written."""
    session.execute(delete(DriftClusterEvent).where(
        DriftClusterEvent.project_id == project_id, DriftClusterEvent.window_start == window_start,
        DriftClusterEvent.metric == metric))
    rows = [{"project_id": project_id, "window_start": window_start, "metric": metric, "cluster": int(c),
             "event_id": int(e)} for c, ids in clusters for e in sorted(set(ids))]
    if rows:
        session.execute(insert(DriftClusterEvent), rows)
    return len(rows)
