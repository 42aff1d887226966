"""A downloadable Evidently HTML report of one window's drift against the project's reference.

Columns: the scalar series the drift stage tests (prompt and response length, latency, completion tokens)
and, when the window's embeddings are stored, the first principal components of the metric's embedded field
(fitted on the reference), so the report shows drift along the reference's main directions of variation.
The report is self-contained (Evidently inlines its scripts: it opens offline) and cached per metric row,
so a second download of an unchanged window costs nothing.
"""

from __future__ import annotations

import secrets
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.metrics.catalog import EMBEDDING_FIELDS, SCALAR_SERIES
from monitor.models import Project
from monitor.pipeline.config import project_config
from monitor.pipeline.models import EventVector, MetricValue
from monitor.pipeline.vectors import load_vectors
from monitor.pipeline.window_data import WindowFrame, load_reference, load_window
from monitor.timestamps import parse_utc

PRINCIPAL_COMPONENTS = 5
MIN_ROWS = 2  # Evidently needs a few rows per side; fewer is a clear error, not a broken report


class ReportUnavailable(ValueError):
    """The window cannot be reported on (bad input, no events on a side); `status_code` for the UI."""

    status_code = 422


class NoSuchDriftRow(ReportUnavailable):
    status_code = 404


@dataclass(frozen=True)
class ReportFrames:
    reference: Any  # pandas.DataFrame
    current: Any
    columns: list[str]


def window_key(ts: datetime) -> str:
    """How a window appears in URLs: 2026-11-22T10:00:00Z."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_window(text: str) -> datetime:
    try:
        return parse_utc(text)
    except ValueError as exc:  # not ISO 8601, no zone, or outside the supported range (monitor/timestamps.py)
        raise ReportUnavailable(f"window_start {exc}") from None


def drift_row(session: Session, project_id: int, metric: str, window_start: datetime) -> MetricValue:
    if not metric.startswith("drift."):
        raise ReportUnavailable(f"metric {metric!r} is not a drift metric (drift.<series>.<method>)")
    row = session.scalars(select(MetricValue).where(
        MetricValue.project_id == project_id, MetricValue.metric == metric, MetricValue.segment == "all",
        MetricValue.window_start == window_start)).first()
    if row is None:
        raise NoSuchDriftRow(f"no {metric} row for the window starting {window_key(window_start)}")
    return row


def _model_key(session: Session, event_ids: list[int], field: str) -> str | None:
    """The embedding model most of the window's events were embedded with (the drift stage's)."""
    if not event_ids:
        return None
    stmt = (select(EventVector.model_key, func.count()).where(EventVector.event_id.in_(event_ids[:5000]),
                                                             EventVector.field == field)
            .group_by(EventVector.model_key).order_by(func.count().desc()).limit(1))
    row = session.execute(stmt).first()
    return None if row is None else str(row[0])


def _components(session: Session, field: str, ref: WindowFrame, cur: WindowFrame,
                ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    key = _model_key(session, cur.ids.tolist(), field)
    if key is None:
        return {}, {}
    _, a = load_vectors(session, ref.ids.tolist(), field, key)
    _, b = load_vectors(session, cur.ids.tolist(), field, key)
    if a.shape[0] < MIN_ROWS or b.shape[0] < MIN_ROWS:
        return {}, {}
    mean = a.mean(axis=0)
    _, _, vt = np.linalg.svd(a - mean, full_matrices=False)
    basis = vt[: min(PRINCIPAL_COMPONENTS, vt.shape[0])]
    pa, pb = (a - mean) @ basis.T, (b - mean) @ basis.T
    names = [f"{field}_pc{k + 1}" for k in range(basis.shape[0])]
    return ({n: pa[:, k] for k, n in enumerate(names)}, {n: pb[:, k] for k, n in enumerate(names)})


def report_frames(session: Session, project: Project, row: MetricValue) -> ReportFrames:
    import pandas as pd

    cfg = project_config(project)
    cur = load_window(session, project.id, row.window_start, row.window_end)
    ref = load_reference(session, project.id, cfg)
    if len(cur) < MIN_ROWS or len(ref) < MIN_ROWS:
        raise ReportUnavailable(f"too few events for a report: {len(ref)} in the reference, {len(cur)} in the window")
    ref_cols: dict[str, np.ndarray] = {s: ref.scalar(s) for s in SCALAR_SERIES}
    cur_cols: dict[str, np.ndarray] = {s: cur.scalar(s) for s in SCALAR_SERIES}
    field = row.metric.split(".")[1]
    if field in EMBEDDING_FIELDS:
        extra_ref, extra_cur = _components(session, field, ref, cur)
        ref_cols.update(extra_ref)
        cur_cols.update(extra_cur)
    # A series that is missing on either side (no latency logged, say) has nothing to compare.
    columns = [c for c in ref_cols if c in cur_cols and np.isfinite(ref_cols[c]).sum() >= MIN_ROWS
               and np.isfinite(cur_cols[c]).sum() >= MIN_ROWS]
    if not columns:
        raise ReportUnavailable("no column has values on both sides")
    reference = pd.DataFrame({c: pd.Series(ref_cols[c]) for c in columns})
    current = pd.DataFrame({c: pd.Series(cur_cols[c]) for c in columns})
    return ReportFrames(reference, current, columns)


def render_report(frames: ReportFrames) -> str:
    from monitor.drift.evidently_methods import import_evidently

    evidently = import_evidently("evidently")
    presets = import_evidently("evidently.presets")
    definition = evidently.DataDefinition(numerical_columns=frames.columns)
    current = evidently.Dataset.from_pandas(frames.current, data_definition=definition)
    reference = evidently.Dataset.from_pandas(frames.reference, data_definition=definition)
    with warnings.catch_warnings():
        # Evidently's own calls into pandas raise deprecation notices that are not ours to fix.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        snapshot = evidently.Report([presets.DataDriftPreset()]).run(current_data=current, reference_data=reference)
        html: str = snapshot.get_html_str(as_iframe=False)
    return html


def report_path(data_dir: Path, project: Project, row: MetricValue) -> Path:
    stamp = row.computed_at.strftime("%Y%m%dT%H%M%S%f")
    return (Path(data_dir) / "reports" / f"project-{project.id}"
            / f"{row.metric}_{row.window_start:%Y%m%dT%H%M%S}_{stamp}.html")


def drift_report(session: Session, project: Project, row: MetricValue, *, data_dir: Path) -> Path:
    """The report file for this drift row, built on first request (written atomically) and reused after."""
    path = report_path(data_dir, project, row)
    if path.is_file():
        return path
    html = render_report(report_frames(session, project, row))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{secrets.token_hex(6)}.tmp")  # two concurrent builds never share a file
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path
