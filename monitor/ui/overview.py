"""What the overview shows per project: the latest drift / toxicity / bias / ops status with sparklines, and
the firing alerts. Reads only; the page handler renders it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.alerts.models import Alert
from monitor.alerts.queries import list_alerts
from monitor.metrics.queries import query_metrics
from monitor.models import Project
from monitor.pipeline.config import project_config
from monitor.ui.charts import sparkline

SPARK_WINDOWS = 24
KINDS = ("drift", "toxicity", "bias", "ops")
# A firing alert on a metric with one of these prefixes marks that group as alerting.
KIND_PREFIXES = {"drift": ("drift.",), "toxicity": ("safety.",), "bias": ("bias.",), "ops": ("ops.", "feedback.")}


@dataclass(frozen=True)
class Tile:
    metric: str
    label: str
    status: str  # ok | flagged | insufficient | no data
    value: float | None
    p_value: float | None
    window_start: datetime | None
    spark: Markup


@dataclass
class KindStatus:
    kind: str
    status: str = "no data"  # alert | flagged | ok | insufficient | no data
    tiles: list[Tile] = field(default_factory=list)


@dataclass
class ProjectStatus:
    project: Project
    kinds: list[KindStatus]
    firing: list[Alert]
    latest_window: datetime | None


def tile_metrics(project: Project) -> dict[str, list[tuple[str, str]]]:
    """(metric, label) per group: the project's first drift method on both embedded fields, and headline
    safety, bias and operational numbers."""
    try:
        method = project_config(project).drift_methods[0]
    except Exception:  # a hand-edited, invalid config must not take the overview down
        method = "mmd"
    return {
        "drift": [(f"drift.prompt.{method}", f"prompt drift ({method})"),
                  (f"drift.response.{method}", f"response drift ({method})")],
        "toxicity": [("safety.toxicity_rate.response", "toxic responses"),
                     ("safety.toxicity_rate.prompt", "toxic prompts")],
        "bias": [("bias.toxicity_rate.gap", "toxicity gap"), ("bias.sentiment.gap", "sentiment gap")],
        "ops": [("ops.volume", "events"), ("ops.error_rate", "error rate"), ("ops.latency_p95", "latency p95 (ms)"),
                ("feedback.positive_rate", "positive feedback")],
    }


def _tile(session: Session, project_id: int, metric: str, label: str) -> Tile:
    rows = query_metrics(session, project_id, metric=metric, segment="all", limit=SPARK_WINDOWS)
    if not rows:
        return Tile(metric, label, "no data", None, None, None, sparkline([], label=label))
    last = rows[-1]
    status = "insufficient" if last.status != "ok" else ("flagged" if last.flagged else "ok")
    spark = sparkline([r.value if r.status == "ok" else None for r in rows],
                      flagged=[bool(r.flagged) for r in rows], label=f"{label}: last {len(rows)} windows")
    return Tile(metric, label, status, last.value, last.p_value, last.window_start, spark)


_RANK = {"alert": 4, "flagged": 3, "ok": 2, "insufficient": 1, "no data": 0}


def project_status(session: Session, project: Project) -> ProjectStatus:
    firing = list_alerts(session, project.id, status="firing", limit=50)
    kinds = []
    latest: datetime | None = None
    for kind, metrics in tile_metrics(project).items():
        ks = KindStatus(kind, tiles=[_tile(session, project.id, m, label) for m, label in metrics])
        for t in ks.tiles:
            if _RANK[t.status] > _RANK[ks.status]:
                ks.status = t.status
            if t.window_start is not None and (latest is None or t.window_start > latest):
                latest = t.window_start
        if any(a.metric.startswith(KIND_PREFIXES[kind]) for a in firing):
            ks.status = "alert"
        kinds.append(ks)
    return ProjectStatus(project, kinds, firing, latest)


def all_projects(session: Session) -> list[Project]:
    return list(session.scalars(select(Project).order_by(Project.slug)))
