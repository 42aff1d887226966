"""Read API: metric time series, the metric catalogue, and the latest drift report."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from monitor.api.deps import ReaderProject, ReadSessionDep
from monitor.metrics.catalog import project_metrics
from monitor.metrics.queries import latest_drift, query_metrics, row_dict
from monitor.pipeline.config import project_config
from monitor.timestamps import UtcTime

router = APIRouter(prefix="/v1", tags=["metrics"])


@router.get("/metrics/catalog", summary="Every metric name driftloop computes, and whether this project does",
            description="Built from explicit tables at start-up (every family is listed on a fresh collector). "
            "`computed` says whether the key's project computes the metric with its current settings; `note` "
            "says what would make it (e.g. set `bias_attribute`). Needs a key with the read scope.")
def catalog(project: ReaderProject) -> list[dict[str, object]]:
    return [m.as_dict() for m in project_metrics(project_config(project))]


@router.get("/metrics", summary="Metric rows of the key's project")
def get_metrics(
    session: ReadSessionDep,
    project: ReaderProject,
    metric: Annotated[str | None, Query(max_length=96, description="Exact name, or a pattern with *.")] = None,
    segment: Annotated[str, Query(max_length=320, description="Segment label, e.g. all or model_version=v2, or a "
                                  "glob as in alert rules (model_version=*).")] = "all",
    start: Annotated[UtcTime | None, Query(description="Windows starting at or after this time (UTC, 1970..9999).")]
    = None,
    end: Annotated[UtcTime | None, Query(description="Windows starting before this time.")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[dict[str, Any]]:
    rows = query_metrics(session, project.id, metric=metric, segment=segment, start=start, end=end, limit=limit)
    return [row_dict(r) for r in rows]


@router.get("/drift/latest", summary="The latest window's drift results, with the explanation when drift fired")
def get_latest_drift(
    session: ReadSessionDep, project: ReaderProject, segment: Annotated[str, Query(max_length=320)] = "all"
) -> dict[str, Any]:
    rows = latest_drift(session, project.id, segment)
    return {
        "project": project.slug,
        "segment": segment,
        "window_start": rows[0].window_start.isoformat() if rows else None,
        "drift": any(r.flagged for r in rows),
        "results": [row_dict(r) for r in rows],
    }
