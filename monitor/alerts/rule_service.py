"""Alert rules of a project: create, change, delete, and apply a whole rule file. Session first, never commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.alerts.models import AlertRule
from monitor.alerts.rules import RuleSpec
from monitor.db import utcnow
from monitor.errors import ConflictError, FieldError, NotFoundError
from monitor.metrics.catalog import project_metrics
from monitor.models import Project
from monitor.pipeline.config import project_config
from monitor.pipeline.segments import BUILTIN_KEYS
from monitor.webhooks.models import WebhookEndpoint

_COLUMNS = ("description", "enabled", "metric", "field", "comparator", "threshold", "segment", "for_windows",
            "severity")


def spec_dict(spec: RuleSpec) -> dict[str, Any]:
    """The stored form of a rule (cooldown in seconds, actions as plain dicts)."""
    return spec.model_dump(mode="json")


def rule_dict(row: AlertRule) -> dict[str, Any]:
    out: dict[str, Any] = {"name": row.name}
    out.update({c: getattr(row, c) for c in _COLUMNS})
    out["cooldown"] = row.cooldown_seconds
    out["actions"] = row.actions
    return out


def rule_view(row: AlertRule) -> dict[str, Any]:
    return {"id": row.id, **rule_dict(row), "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat()}


def list_rules(session: Session, project_id: int) -> list[AlertRule]:
    return list(session.scalars(select(AlertRule).where(AlertRule.project_id == project_id).order_by(AlertRule.name)))


def get_rule(session: Session, project_id: int, name: str) -> AlertRule:
    row = session.scalar(select(AlertRule).where(AlertRule.project_id == project_id, AlertRule.name == name))
    if row is None:
        raise NotFoundError(f"no alert rule named {name!r} in this project")
    return row


class RuleLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def metric(self) -> str: ...

    @property
    def segment(self) -> str: ...


def rule_warnings(project: Project, specs: Sequence[RuleLike]) -> list[str]:
    """Why a rule may never fire under the project's settings: a metric it does not compute, a segment key it
    does not segment by. Such rules are accepted (settings can change later, e.g. `bias_attribute`), and
    the warnings go back in the response, the CLI's output and the UI's settings page (README: "Rules on
    metrics a project does not compute"). Takes specs or stored rules."""
    cfg = project_config(project)
    computed = {m.spec.name: m for m in project_metrics(cfg)}
    keys = {*BUILTIN_KEYS, *cfg.segment_keys}
    out = []
    for spec in specs:
        entry = computed.get(spec.metric)
        if entry is None and spec.metric.startswith("eval."):  # an evaluator name the project does not configure
            out.append(f"rule {spec.name!r}: project {project.slug!r} has no evaluator named "
                       f"{spec.metric.split('.')[1]!r}, so the rule cannot fire: add it to `evaluators`")
        if entry is not None and not entry.computed:
            out.append(f"rule {spec.name!r}: project {project.slug!r} does not compute {spec.metric!r} with its "
                       f"current settings, so the rule cannot fire: {entry.note}")
        key = spec.segment.split("=", 1)[0] if "=" in spec.segment else None
        if key is not None and "*" not in key and key not in keys:
            out.append(f"rule {spec.name!r}: segment key {key!r} is not one the project segments by "
                       f"({', '.join(sorted(keys))}); add it to segment_keys or the rule cannot fire")
    return out


def _check_endpoints(session: Session, project_id: int, spec: RuleSpec, prefix: str = "") -> None:
    wanted = spec.endpoint_names()
    if not wanted:
        return
    known = set(session.scalars(select(WebhookEndpoint.name).where(WebhookEndpoint.project_id == project_id)))
    for path, name in wanted:
        if name not in known:
            raise FieldError(f"{prefix}{path}", f"no webhook endpoint named {name!r} in this project "
                             "(create it first: POST /v1/webhook-endpoints or `driftloop webhooks add`)")


def _write(row: AlertRule, spec: RuleSpec) -> None:
    data = spec_dict(spec)
    for c in _COLUMNS:
        setattr(row, c, data[c])
    row.cooldown_seconds = spec.cooldown
    row.actions = data["actions"]
    row.updated_at = utcnow()


def create_rule(session: Session, project_id: int, spec: RuleSpec) -> AlertRule:
    if session.scalar(select(AlertRule.id).where(AlertRule.project_id == project_id, AlertRule.name == spec.name)):
        raise ConflictError(f"an alert rule named {spec.name!r} already exists; change it with PUT or apply")
    _check_endpoints(session, project_id, spec)
    row = AlertRule(project_id=project_id, name=spec.name, created_at=utcnow())
    _write(row, spec)
    session.add(row)
    session.flush()
    return row


def update_rule(session: Session, project_id: int, name: str, spec: RuleSpec) -> AlertRule:
    if spec.name != name:
        raise FieldError("name", f"the body names rule {spec.name!r} but the path names {name!r}; "
                         "rules are renamed by deleting and creating")
    row = get_rule(session, project_id, name)
    _check_endpoints(session, project_id, spec)
    _write(row, spec)
    session.flush()
    return row


def delete_rule(session: Session, project_id: int, name: str) -> None:
    """Deletes the rule and its alert history; set `enabled: false` instead to keep the history."""
    session.delete(get_rule(session, project_id, name))
    session.flush()


@dataclass
class ApplyReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged,
                "deleted": self.deleted}


def apply_rules(session: Session, project_id: int, specs: list[RuleSpec], *, prune: bool = False) -> ApplyReport:
    """Make the project's rules match a rule file: create new names, update changed ones, and with `prune`
    delete rules the file does not name. Checks every rule before writing any (all or nothing)."""
    for i, spec in enumerate(specs):
        _check_endpoints(session, project_id, spec, prefix=f"rules[{i}].")
    existing = {r.name: r for r in list_rules(session, project_id)}
    report = ApplyReport()
    for spec in specs:
        row = existing.get(spec.name)
        if row is None:
            create_rule(session, project_id, spec)
            report.created.append(spec.name)
        elif rule_dict(row) == spec_dict(spec):
            report.unchanged.append(spec.name)
        else:
            _write(row, spec)
            report.updated.append(spec.name)
    if prune:
        named = {s.name for s in specs}
        for name, row in existing.items():
            if name not in named:
                session.delete(row)
                report.deleted.append(name)
    session.flush()
    return report
