"""The onset row of a window (`drift.embeddings.onset`, segment `all`): the window against the trailing hours.

The rule is monitor/drift/onset.py's; this module finds the trailing events, samples and embeds them, and reads
the project's earlier onset scores the row's λ is measured on. Everything is a function of the stored events and
rows before the window, so a recompute of the same data writes the same row.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.drift.onset import (
    HISTORY_DAYS,
    HISTORY_ROWS,
    ONSET,
    SERIES,
    TRAILING_FACTOR,
    borrowed_calibration,
    finite_scores,
    history_calibration,
)
from monitor.drift.thresholds import Calibration
from monitor.metrics.catalog import drift_metric_name
from monitor.models import Event
from monitor.pipeline.config import ProjectConfig
from monitor.pipeline.models import MetricValue
from monitor.pipeline.sampling import sample_ids, stable_seed
from monitor.pipeline.segments import ALL
from monitor.pipeline.vectors import Encode, ensure_vectors, load_vectors


def onset_span(cfg: ProjectConfig) -> timedelta | None:
    """The trailing span, rounded up to whole windows (at least one); None when the rows are off."""
    if cfg.drift_onset_seconds is None:
        return None
    windows = max(1, math.ceil(cfg.drift_onset_seconds / cfg.window_seconds))
    return timedelta(seconds=windows * cfg.window_seconds)


def trailing_ids(session: Session, project_id: int, start: datetime, span: timedelta) -> np.ndarray:
    """Ids of the project's events in [start - span, start): fetched once per window, sampled per field."""
    return np.fromiter(session.scalars(select(Event.id).where(
        Event.project_id == project_id, Event.ts >= start - span, Event.ts < start)), dtype=np.int64)


def onset_history(session: Session, project_id: int, start: datetime) -> list[float | None]:
    """The stored onset scores of the windows before `start` (newest first, at most `HISTORY_ROWS`, within
    `HISTORY_DAYS`); None for a row whose score is not a number."""
    details = session.scalars(select(MetricValue.details).where(
        MetricValue.project_id == project_id, MetricValue.segment == ALL,
        MetricValue.metric == drift_metric_name(SERIES, ONSET), MetricValue.status == "ok",
        MetricValue.window_start < start, MetricValue.window_start >= start - timedelta(days=HISTORY_DAYS),
    ).order_by(MetricValue.window_start.desc()).limit(HISTORY_ROWS))
    out: list[float | None] = []
    for d in details:
        score = (d.get("details") or {}).get("score") if isinstance(d, dict) else None
        out.append(float(score) if isinstance(score, int | float) else None)
    return out


def onset_calibration(session: Session, cfg: ProjectConfig, *, project_id: int, start: datetime,
                      window_size: int, n_trailing: int,
                      reference: tuple[Calibration, str] | None) -> tuple[Calibration, str]:
    """The row's calibration and its computed_at: from the history when it is long enough (derived at the
    window's start from the rows before it), else borrowed from a reference calibration of `all`."""
    history = onset_history(session, project_id, start)
    cal = history_calibration(history, alpha=cfg.drift_alpha, window_size=window_size, n_trailing=n_trailing,
                              seed=stable_seed(project_id, start.isoformat(), "onset-lambda"))
    if cal is not None:
        return cal, start.isoformat()
    return borrowed_calibration(reference[0] if reference else None, history=len(finite_scores(history)),
                                alpha=cfg.drift_alpha, window_size=window_size, n_trailing=n_trailing), (
        reference[1] if reference else start.isoformat())


def trailing_vectors(session: Session, cfg: ProjectConfig, *, project_id: int, field: str, trailing: np.ndarray,
                     n_window: int, model_key: str, encode: Encode) -> np.ndarray:
    """Vectors of a uniform sample of the `trailing` ids (`TRAILING_FACTOR` x the window's rows, at most
    `drift_max_samples`; seeded per event, so overlapping spans share their samples); the sample's missing vectors
    are embedded and stored (usually none: the earlier windows embedded their events)."""
    limit = min(TRAILING_FACTOR * n_window, cfg.drift_max_samples)
    ids = sample_ids(trailing, limit, stable_seed(project_id, "onset-sample")).tolist()
    ensure_vectors(session, ids, field, model_key, encode)
    _, vecs = load_vectors(session, ids, field, model_key)  # events with empty text have none
    return vecs
