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
KINDS = ("drift", "toxicity", "bias", "ops", "evaluators")  # evaluators: only for projects that configure some
# A firing alert on a metric with one of these prefixes marks that group as alerting.
KIND_PREFIXES = {"drift": ("drift.",), "toxicity": ("safety.",), "bias": ("bias.",), "ops": ("ops.", "feedback."),
                 "evaluators": ("eval.",)}


@dataclass(frozen=True)
class Tile:
    metric: str
    label: str
    status: str  # ok | flagged | insufficient | failed | no data
    value: float | None
    p_value: float | None
    window_start: datetime | None
    spark: Markup
    unit: str = ""  # how `value` reads: "%" (a rate, shown times 100), "pp" (a gap of rates), "ms", "effect", ""
    note: str = ""  # why a tile says insufficient (the metric row's reason) or failed (the evaluator's message)


@dataclass
class KindStatus:
    kind: str
    status: str = "no data"  # alert | flagged | insufficient | ok | no data
    tiles: list[Tile] = field(default_factory=list)
    hint: str = ""  # what to do when the group has no data (e.g. how to enable bias)


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
        cfg = project_config(project)
        method, evaluators = cfg.drift_methods[0], [e for e in cfg.evaluators if e.enabled]
    except Exception:  # a hand-edited, invalid config must not take the overview down
        method, evaluators = "mmd", []
    groups = {
        "drift": [(f"drift.prompt.{method}", f"prompt drift ({method})"),
                  (f"drift.response.{method}", f"response drift ({method})")],
        "toxicity": [("safety.toxicity_rate.response", "toxic responses"),
                     ("safety.toxicity_rate.prompt", "toxic prompts"),
                     ("safety.profanity_rate.response", "abusive responses (profanity)")],
        "bias": [("bias.toxicity_rate.gap", "toxicity gap"), ("bias.sentiment.gap", "sentiment gap")],
        "ops": [("ops.volume", "events"), ("ops.error_rate", "error rate"), ("ops.latency_p95", "latency p95 (ms)"),
                ("feedback.positive_rate", "positive feedback")],
    }
    if evaluators:  # one series per evaluator: the share it labels; its coverage shows when it stops scoring
        groups["evaluators"] = [t for e in evaluators for t in (
            (f"eval.{e.name}.rate", f"{e.name} ({e.kind}) rate"), (f"eval.{e.name}.coverage", f"{e.name} coverage"))]
    return groups


def unit_of(metric: str) -> str:
    if metric.startswith("drift."):
        return "effect"
    if metric == "bias.toxicity_rate.gap":
        return "pp"
    if metric.startswith("eval.") and metric.endswith((".rate", ".coverage")):
        return "%"
    if metric.endswith("_rate") or ".toxicity_rate." in metric or ".profanity_rate." in metric \
            or metric == "feedback.positive_rate":
        return "%"
    if "latency" in metric:
        return "ms"
    return ""


def _tile(session: Session, project_id: int, metric: str, label: str, start: datetime | None = None,
          end: datetime | None = None) -> Tile:
    rows = query_metrics(session, project_id, metric=metric, segment="all", limit=SPARK_WINDOWS, start=start,
                         end=end)
    if not rows:
        return Tile(metric, label, "no data", None, None, None, sparkline([], label=label), unit_of(metric))
    last = rows[-1]
    status = "insufficient" if last.status != "ok" else ("flagged" if last.flagged else "ok")
    failure = (last.details or {}).get("evaluator_status") == "failed"
    if failure and last.status == "error":
        status = "failed"
    n = len(rows)
    spark = sparkline([r.value if r.status == "ok" else None for r in rows],
                      flagged=[bool(r.flagged) for r in rows],
                      label=f"{label}: last {n} window{'' if n == 1 else 's'}", slots=SPARK_WINDOWS)
    note = str((last.details or {}).get("reason") or "") if status == "insufficient" else ""
    if failure:
        note = f"evaluator failed: {(last.details or {}).get('message', '')}"
    return Tile(metric, label, status, last.value if last.status == "ok" else None, last.p_value,
                last.window_start, spark, unit_of(metric), note)


# A group is as bad as its worst tile; `insufficient` ranks above `ok`, so a group whose metric could not be
# computed never reads "ok" (it says it cannot tell).
_RANK = {"alert": 5, "failed": 4, "flagged": 3, "insufficient": 2, "ok": 1, "no data": 0}
BIAS_HINT = ("Bias is off: set the project's bias_attribute to a metadata key whose values are the groups to "
             "compare (e.g. locale), and send that key with events.")


def project_status(session: Session, project: Project, *, start: datetime | None = None,
                   end: datetime | None = None) -> ProjectStatus:
    """The latest status of each group; with a range, of the newest windows inside it (firing alerts are always
    shown: they are firing now)."""
    firing = list_alerts(session, project.id, status="firing", limit=50)
    kinds = []
    latest: datetime | None = None
    for kind, metrics in tile_metrics(project).items():
        ks = KindStatus(kind, tiles=[_tile(session, project.id, m, label, start, end) for m, label in metrics])
        for t in ks.tiles:
            if _RANK[t.status] > _RANK[ks.status]:
                ks.status = t.status
            if t.window_start is not None and (latest is None or t.window_start > latest):
                latest = t.window_start
        if any(a.metric.startswith(KIND_PREFIXES[kind]) for a in firing):
            ks.status = "alert"
        if kind == "bias" and ks.status == "no data" and not _bias_attribute(project):
            ks.hint = BIAS_HINT
        kinds.append(ks)
    return ProjectStatus(project, kinds, firing, latest)


def _bias_attribute(project: Project) -> str | None:
    try:
        return project_config(project).bias_attribute
    except Exception:  # an invalid config must not take the overview down
        return None


def all_projects(session: Session) -> list[Project]:
    return list(session.scalars(select(Project).order_by(Project.slug)))
