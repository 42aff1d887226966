"""The default judge-health rules, created when an evaluator is added to a project's config.

Created once, when the evaluator's name first appears: a rule the operator changes or disables is left as it
is, and one deleted stays deleted until the evaluator is removed and added again. ``min_coverage`` comes from
the evaluator's params when its kind takes one (injection, judge), else ``DEFAULT_MIN_COVERAGE``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.alerts.models import AlertRule
from monitor.alerts.rule_service import create_rule
from monitor.alerts.rules import RuleSpec
from monitor.evaluators.health import DEFAULT_MIN_COVERAGE, judge_health_rule_dicts


def _names(config: dict[str, Any] | None) -> set[str]:
    out = set()
    for e in (config or {}).get("evaluators") or []:
        if isinstance(e, dict):
            out.add(str(e.get("name") or e.get("kind") or ""))
    return out


def ensure_health_rules(session: Session, project_id: int, before: dict[str, Any] | None,
                        after: dict[str, Any]) -> list[str]:
    """Create the two default rules of each evaluator new in ``after``; returns the names created."""
    new = _names(after) - _names(before)
    created: list[str] = []
    for e in after.get("evaluators") or []:
        name = str(e.get("name") or e.get("kind") or "")
        if name not in new or not e.get("enabled", True):
            continue
        share = float((e.get("params") or {}).get("min_coverage", DEFAULT_MIN_COVERAGE))
        for rule in judge_health_rule_dicts(name, min_coverage=share):
            exists = session.scalar(select(AlertRule.id).where(AlertRule.project_id == project_id,
                                                               AlertRule.name == rule["name"]))
            if exists is None:
                create_rule(session, project_id, RuleSpec.model_validate(rule))
                created.append(str(rule["name"]))
    return created
