"""A window's drift: every drift row of the window, the explanation clusters with example prompts, and the
downloadable Evidently report of any of its drift metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy import case, func, select
from starlette.responses import FileResponse, Response

from monitor.api.deps import ReadSessionDep
from monitor.pipeline.models import MetricValue
from monitor.ui.drift_report import drift_report, drift_row, parse_window, window_key
from monitor.ui.render import render
from monitor.ui.routes_pages import FromParam, RangeParam, Slug, ToParam, project_or_404
from monitor.ui.security import OperatorDep, PageError, settings_of
from monitor.ui.timerange import parse_range

router = APIRouter(prefix="/ui", include_in_schema=False)
WINDOW_LIST_LIMIT = 500
Metric = Annotated[str, Path(pattern=r"^drift\.[a-z0-9_]+\.[a-z0-9_]+$", max_length=96)]
SegmentParam = Annotated[str, Query(min_length=1, max_length=512, description="segment label, `all` by default")]


@router.get("/p/{slug}/drift")
def drift_windows(slug: Slug, request: Request, session: ReadSessionDep, operator: OperatorDep,
                  range_: RangeParam = None, from_: FromParam = None, to: ToParam = None) -> Response:
    """Every window with drift rows (newest first), so any window's drift and report is a click away."""
    project = project_or_404(session, slug)
    tr = parse_range(range_, from_, to)
    flagged = func.sum(case((MetricValue.flagged.is_(True), 1), else_=0))
    stmt = (select(MetricValue.window_start, MetricValue.window_end, func.count(), flagged)
            .where(MetricValue.project_id == project.id, MetricValue.segment == "all",
                   MetricValue.metric.like("drift.%"), MetricValue.status == "ok"))
    if tr.start is not None:
        stmt = stmt.where(MetricValue.window_start >= tr.start)
    if tr.end is not None:
        stmt = stmt.where(MetricValue.window_start < tr.end)
    rows = session.execute(
        stmt.group_by(MetricValue.window_start, MetricValue.window_end)
        .order_by(MetricValue.window_start.desc()).limit(WINDOW_LIST_LIMIT)).all()
    windows = [{"start": start, "end": end, "rows": int(n), "flagged": int(f or 0)} for start, end, n, f in rows]
    return render(request, "drift_windows.html", {"title": f"{project.slug}: drift", "project": project,
                                                  "windows": windows, "limit": WINDOW_LIST_LIMIT, "tr": tr},
                  operator=operator)


@router.get("/p/{slug}/drift/{window_start}")
def drift_window(slug: Slug, window_start: str, request: Request, session: ReadSessionDep,
                 operator: OperatorDep, segment: SegmentParam = "all") -> Response:
    project = project_or_404(session, slug)
    ts = parse_window(window_start)
    rows = list(session.scalars(select(MetricValue).where(
        MetricValue.project_id == project.id, MetricValue.segment == segment, MetricValue.window_start == ts,
        MetricValue.metric.like("drift.%")).order_by(MetricValue.metric)))
    if not rows:
        raise PageError(404, f"no drift rows for the window starting {window_key(ts)} (segment {segment})")
    # Links to the window's other segments: their rows carry their own calibration (a segment's λ may be `all`'s
    # carried to its size, docs/drift.md).
    segments = list(session.scalars(select(MetricValue.segment).distinct().where(
        MetricValue.project_id == project.id, MetricValue.window_start == ts,
        MetricValue.metric.like("drift.%")).order_by(MetricValue.segment)))
    explained = [r for r in rows if isinstance(r.details, dict) and r.details.get("explanation")]
    calibrated = [(r, r.details["details"]["calibration"], r.details) for r in rows
                  if isinstance(r.details, dict) and isinstance(r.details.get("details"), dict)
                  and "calibration" in r.details["details"]]
    return render(request, "drift_window.html", {
        "title": f"{project.slug}: drift {window_key(ts)}", "project": project, "rows": rows,
        "explained": explained, "calibrated": calibrated, "window": window_key(ts), "segment": segment,
        "segments": segments,
        "window_end": rows[0].window_end}, operator=operator)


@router.get("/p/{slug}/drift/{metric}/{window_start}/report.html")
def drift_report_download(slug: Slug, metric: Metric, window_start: str, request: Request, session: ReadSessionDep,
                          operator: OperatorDep) -> Response:
    project = project_or_404(session, slug)
    row = drift_row(session, project.id, metric, parse_window(window_start))
    path = drift_report(session, project, row, data_dir=settings_of(request).data_dir)
    filename = f"driftloop-{project.slug}-{metric}-{row.window_start:%Y%m%dT%H%M}.html"
    # Evidently's report runs its own inline scripts: served as a download, never as a page of this site.
    return FileResponse(path, media_type="text/html", filename=filename,
                        headers={"Content-Security-Policy": "sandbox"})
