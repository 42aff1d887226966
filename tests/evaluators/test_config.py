"""Evaluator settings: validated with the project config, each error naming the field; the metric catalog
and rule warnings know the project's evaluator names."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from monitor.alerts.rule_service import rule_warnings
from monitor.alerts.rules import RuleSpec
from monitor.errors import FieldErrors
from monitor.metrics.catalog import get_metric, project_metrics
from monitor.pipeline.config import ProjectConfig
from monitor.projects.config_service import set_key, validate
from monitor.projects.service import get_or_create_project
from tests.support.factories import unique_slug


def _fields(config: dict[str, object]) -> dict[str, str]:
    with pytest.raises(FieldErrors) as info:
        validate(config)
    return {e.field: e.message for e in info.value.problems}


def test_errors_name_the_field() -> None:
    assert "unknown evaluator kind 'nope'" in _fields({"evaluators": [{"kind": "nope"}]})["evaluators.0"]
    problems = _fields({"evaluators": [{"kind": "refusal", "params": {"threshold": 1.5}}]})
    assert "params.threshold" in problems["evaluators.0"]
    problems = _fields({"evaluators": [{"kind": "pii_leak", "params": {"detectors": ["email", "dna"]}}]})
    assert "params.detectors" in problems["evaluators.0"] and "dna" in problems["evaluators.0"]
    assert "evaluators.0.sample_share" in _fields({"evaluators": [{"kind": "refusal", "sample_share": 0}]})
    assert "evaluators.0.name" in _fields({"evaluators": [{"kind": "refusal", "name": "Bad Name"}]})
    assert "used twice" in _fields({"evaluators": [{"kind": "refusal"}, {"kind": "refusal"}]})["evaluators"]


def test_name_defaults_to_kind() -> None:
    cfg = ProjectConfig.model_validate({"evaluators": [{"kind": "degenerate"}, {"kind": "refusal", "name": "no"}]})
    assert [e.name for e in cfg.evaluators] == ["degenerate", "no"]


def test_set_key_validates(backend: str, session: Session) -> None:
    project = get_or_create_project(session, unique_slug())
    with pytest.raises(FieldErrors) as info:
        set_key(session, project, "evaluators", [{"kind": "refusal", "max_per_window": 0}], actor="test",
                source="cli")
    assert [e.field for e in info.value.problems] == ["evaluators.0.max_per_window"]
    result = set_key(session, project, "evaluators", [{"kind": "refusal", "name": "refused"}], actor="test",
                     source="cli")
    assert result.config["evaluators"][0]["name"] == "refused"


def test_catalog_and_rules_know_evaluator_names(backend: str, session: Session) -> None:
    assert get_metric("eval.refusal.rate").kind == "eval"
    assert get_metric("eval.my_judge.coverage").kind == "eval"  # a name a project may choose
    with pytest.raises(KeyError):
        get_metric("eval.refusal.median")
    cfg = ProjectConfig.model_validate({"evaluators": [{"kind": "refusal", "name": "refused"}]})
    computed = {m.spec.name: m for m in project_metrics(cfg)}
    assert computed["eval.refused.rate"].computed
    assert not computed["eval.degenerate.rate"].computed and "no evaluator named" in computed[
        "eval.degenerate.rate"].note
    project = get_or_create_project(session, unique_slug())
    project.config = {"evaluators": [{"kind": "refusal", "name": "refused"}]}
    rules = [RuleSpec.model_validate({"name": n, "metric": m, "comparator": ">", "threshold": 0.2})
             for n, m in (("ok", "eval.refused.rate"), ("nope", "eval.ghost.rate"))]
    warnings = rule_warnings(project, rules)
    assert len(warnings) == 1 and "'ghost'" in warnings[0]
