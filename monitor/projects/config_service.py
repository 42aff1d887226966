"""Change a project's pipeline configuration (`projects.config`) without SQL: read it with its defaults, set or
unset one key, apply a whole file, see the diff and which computed windows a change affects, and keep an audit
log (`project_config_changes`). The CLI, the API and the UI settings page all come through here, and all
validate against the one schema the pipeline reads (`monitor.pipeline.config.ProjectConfig`).

Session first, never commits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from monitor.db import utcnow
from monitor.errors import FieldError, FieldErrors
from monitor.models import Project
from monitor.pipeline.config import ProjectConfig
from monitor.pipeline.models import ScanMark, WindowState
from monitor.projects.models import ProjectConfigChange

# What each top-level key changes in windows already computed. Keys not listed here (probes, retrain) change
# no stored window: probes run on their own schedule, retraining reads its overrides when a job starts.
AFFECTS: dict[str, tuple[str, ...]] = {
    "window_seconds": ("ops", "feedback", "drift", "safety", "bias", "eval"),
    "segment_keys": ("ops", "feedback", "drift", "safety", "bias", "eval"),
    "max_segment_values": ("ops", "feedback", "drift", "safety", "bias", "eval"),
    "reference": ("drift",),
    "min_samples": ("ops", "safety", "eval"),
    "drift_min_samples": ("drift",),
    "drift_methods": ("drift",),
    "drift_fields": ("drift",),
    "drift_alpha": ("drift",),
    "drift_min_effect": ("drift",),
    "drift_calibration_blocks": ("drift",),
    "drift_max_samples": ("drift",),
    "safety_max_samples": ("safety", "bias"),
    "bias_attribute": ("bias",),
    "bias_min_group_size": ("bias",),
    "bias_alpha": ("bias",),
    "positive_feedback_threshold": ("feedback", "bias"),
    "positive_labels": ("feedback", "bias"),
    # Stored scores are reused per (event, evaluator version): recomputing scores only what a change made new.
    "evaluators": ("eval",),
    "evaluator_context_key": ("eval",),
}
# A new window length moves every boundary: the old windows' states are dropped and every event re-bucketed.
REBUCKET = "window_seconds"


def effective(config: dict[str, Any] | None) -> dict[str, Any]:
    """Every setting with its value, defaults filled in (JSON types)."""
    return validate(config or {}).model_dump(mode="json")


def validate(config: dict[str, Any]) -> ProjectConfig:
    """The config parsed by the pipeline's own schema; FieldErrors naming each bad field (dotted) otherwise."""
    try:
        return ProjectConfig.model_validate(config)
    except ValidationError as exc:
        raise FieldErrors([_problem(e) for e in exc.errors()]) from None


def _problem(error: Any) -> FieldError:
    # Discriminated unions put the variant's tag in the path (reference.first_n.n); the user wrote reference.n.
    loc = [str(p) for p in error["loc"] if p not in ("range", "first_n")]
    name = ".".join(loc) or "config"
    message = str(error["msg"])
    if error["type"] == "extra_forbidden":
        message = f"unknown setting; known settings: {', '.join(known_keys())}" if len(loc) == 1 else \
            "unknown setting"
    return FieldError(name, message)


def known_keys() -> list[str]:
    return list(ProjectConfig.model_fields)


def parse_value(raw: str) -> Any:
    """A command-line value as YAML: `3600` is a number, `[a, b]` a list, `null` unsets to None, text stays text."""
    try:
        return yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        return raw


def with_key(config: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """A copy of the stored config with dotted `key` set (`reference.n`, `probes.every_hours`)."""
    parts = key.split(".")
    _check_top(parts[0])
    out = _copy(config)
    node = out
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            # Fill the nested object from its effective value, so `reference.n 500` keeps reference.kind.
            child = _lookup(_lenient(config), parts[: i + 1])
            child = dict(child) if isinstance(child, dict) else {}
        elif not isinstance(child, dict):
            raise FieldError(".".join(parts[: i + 1]), "is not an object; set it whole")
        node[part] = child
        node = child
    node[parts[-1]] = value
    return out


def without_key(config: dict[str, Any], key: str) -> dict[str, Any]:
    """A copy with dotted `key` removed: it goes back to its default."""
    parts = key.split(".")
    _check_top(parts[0])
    out = _copy(config)
    node: Any = out
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(parts[-1], None)
    return out


def _check_top(name: str) -> None:
    if name not in ProjectConfig.model_fields:
        raise FieldError(name, f"unknown setting; known settings: {', '.join(known_keys())}")


def _copy(config: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = yaml.safe_load(yaml.safe_dump(config or {}))  # a deep copy of plain JSON data
    return out or {}


def _lookup(data: Any, parts: list[str]) -> Any:
    for p in parts:
        data = data.get(p) if isinstance(data, dict) else None
    return data


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data:
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: data}


@dataclass(frozen=True)
class Change:
    key: str
    before: Any
    after: Any

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "before": self.before, "after": self.after}


def _lenient(config: dict[str, Any]) -> dict[str, Any]:
    """The effective config, or, for one that no longer validates (edited by hand), the defaults overlaid with
    what is stored: a change that fixes it must still show what it changes."""
    try:
        return effective(config)
    except FieldErrors:
        return {**effective({}), **(config or {})}


def diff(before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    """Per dotted key, the effective values that differ (defaults filled in on both sides)."""
    a, b = _flatten(_lenient(before)), _flatten(effective(after))
    return [Change(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


@dataclass
class Recompute:
    """Which computed windows a change affects: the metric families it changes, and the windows themselves."""

    families: list[str] = field(default_factory=list)
    windows: int = 0
    first: datetime | None = None
    last: datetime | None = None
    rebucket: bool = False
    starts: list[datetime] = field(default_factory=list, repr=False)  # the windows to mark (not rebucketing)

    def as_dict(self) -> dict[str, Any]:
        return {"families": self.families, "windows": self.windows,
                "first_window": self.first.isoformat() if self.first else None,
                "last_window": self.last.isoformat() if self.last else None, "rebucket": self.rebucket}

    def describe(self, done: bool = False) -> str:
        if not self.families:
            return "no computed window is affected"
        span = f" ({self.first:%Y-%m-%d %H:%M} to {self.last:%Y-%m-%d %H:%M} UTC)" if self.first and self.last else ""
        what = ", ".join(self.families)
        if self.rebucket:
            verb = "were dropped" if done else "are dropped"
            return (f"window length changes: all {self.windows} computed window(s){span} {verb} and every event "
                    f"is re-bucketed into new windows ({what} metrics); old windows' metric rows stay until retention")
        if done:
            return f"{self.windows} computed window(s){span} marked for recomputation of {what} metrics"
        return f"{self.windows} computed window(s){span} would be recomputed for {what} metrics"


def recompute_plan(session: Session, project_id: int, changes: list[Change], window_seconds: int) -> Recompute:
    """The computed windows a change affects. Without a new window length, only windows of the current length:
    states left from an earlier length (changed without recomputing) are not windows of this config."""
    tops = {c.key.split(".")[0] for c in changes}
    families = sorted({f for t in tops for f in AFFECTS.get(t, ())})
    plan = Recompute(families=families, rebucket=REBUCKET in tops)
    if not families:
        return plan
    rows = session.execute(
        select(WindowState.window_start, WindowState.window_end)
        .where(WindowState.project_id == project_id, WindowState.computed_at.is_not(None))
        .order_by(WindowState.window_start)
    ).all()
    starts = [s for s, e in rows if plan.rebucket or (e - s).total_seconds() == window_seconds]
    plan.windows = len(starts)
    plan.first, plan.last = (starts[0], starts[-1]) if starts else (None, None)
    plan.starts = [] if plan.rebucket else starts
    return plan


@dataclass
class ConfigResult:
    project: str
    config: dict[str, Any]  # the effective config after the change (or as it would be, on a dry run)
    stored: dict[str, Any]  # what `projects.config` holds: only what was set
    changes: list[Change]
    recompute: Recompute
    dry_run: bool
    recomputed: bool  # whether the affected windows were marked for recomputation
    change_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"project": self.project, "dry_run": self.dry_run, "changes": [c.as_dict() for c in self.changes],
                "recompute": {**self.recompute.as_dict(), "description": self.recompute.describe(self.recomputed),
                              "done": self.recomputed},
                "config": self.config, "stored": self.stored, "change_id": self.change_id}


def change_config(
    session: Session, project: Project, new_config: dict[str, Any], *, actor: str, source: str,
    dry_run: bool = False, recompute: bool = False,
) -> ConfigResult:
    """Validate `new_config` (the whole stored config), and unless `dry_run` store it, audit it and, with
    `recompute`, mark the computed windows it affects dirty so the scheduler recomputes them.

    Without `recompute` the new settings apply to windows computed from now on (open windows, late events);
    windows already computed keep their values, and the result says which those are."""
    parsed = validate(new_config).model_dump(mode="json")
    before = dict(project.config or {})
    # Stored as the schema parsed it ("1800" from a form is 1800), and only the keys that were set: a default
    # changed in a later release still reaches projects that never chose otherwise.
    stored = {k: parsed[k] for k in new_config}
    changes = diff(before, stored)
    plan = recompute_plan(session, project.id, changes, int(parsed["window_seconds"]))
    result = ConfigResult(project=project.slug, config=effective(stored), stored=stored, changes=changes,
                          recompute=plan, dry_run=dry_run, recomputed=False)
    if dry_run or not changes:
        return result
    project.config = stored
    marked = _mark_for_recompute(session, project.id, plan) if recompute and plan.families else 0
    row = ProjectConfigChange(project_id=project.id, changed_at=utcnow(), actor=actor[:128], source=source,
                              before=before, after=stored, diff=[c.as_dict() for c in changes],
                              recomputed_windows=marked)
    session.add(row)
    session.flush()
    # A newly added evaluator gets its default judge-health alert rules (docs/evaluators.md).
    from monitor.evaluators.health_rules import ensure_health_rules

    ensure_health_rules(session, project.id, before, parsed)
    result.recomputed = bool(recompute and plan.families)
    result.change_id = row.id
    return result


def _mark_for_recompute(session: Session, project_id: int, plan: Recompute) -> int:
    if plan.rebucket:
        # Old boundaries mean nothing under the new length: forget them and rescan every event from the start.
        session.execute(delete(WindowState).where(WindowState.project_id == project_id))
        session.execute(delete(ScanMark).where(ScanMark.project_id == project_id))
        return plan.windows
    now = utcnow()
    for i in range(0, len(plan.starts), 500):  # bounded IN lists
        session.execute(
            update(WindowState)
            .where(WindowState.project_id == project_id, WindowState.window_start.in_(plan.starts[i:i + 500]))
            .values(dirty_since=func.coalesce(WindowState.dirty_since, now), complete=False)
        )
    return plan.windows


def set_key(session: Session, project: Project, key: str, value: Any, **kw: Any) -> ConfigResult:
    return change_config(session, project, with_key(project.config or {}, key, value), **kw)


def unset_key(session: Session, project: Project, key: str, **kw: Any) -> ConfigResult:
    return change_config(session, project, without_key(project.config or {}, key), **kw)


def patch_config(session: Session, project: Project, patch: dict[str, Any], **kw: Any) -> ConfigResult:
    """Merge top-level keys into the stored config; a key given as null goes back to its default."""
    merged = _copy(project.config or {})
    for k, v in patch.items():
        _check_top(k)
        if v is None:
            merged.pop(k, None)
        else:
            merged[k] = v
    return change_config(session, project, merged, **kw)


def load_config_file(text: str) -> dict[str, Any]:
    """A YAML config file: a mapping of settings, optionally under a top-level `config:` key."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FieldError("file", f"not valid YAML: {exc}") from None
    if data is None:
        return {}
    if isinstance(data, dict) and set(data) <= {"config", "project"} and isinstance(data.get("config"), dict):
        data = data["config"]
    if not isinstance(data, dict):
        raise FieldError("file", "must be a mapping of settings (key: value)")
    return data


def history(session: Session, project_id: int, limit: int = 50) -> list[ProjectConfigChange]:
    return list(session.scalars(
        select(ProjectConfigChange).where(ProjectConfigChange.project_id == project_id)
        .order_by(ProjectConfigChange.changed_at.desc(), ProjectConfigChange.id.desc()).limit(limit)
    ))


def change_view(row: ProjectConfigChange) -> dict[str, Any]:
    return {"id": row.id, "changed_at": row.changed_at.isoformat(), "actor": row.actor, "source": row.source,
            "changes": row.diff, "recomputed_windows": row.recomputed_windows}
