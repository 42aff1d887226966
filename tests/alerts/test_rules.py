"""Rule validation (messages name the field) and YAML rule files."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from monitor.alerts.rules import RuleFileError, RuleSpec, parse_duration, parse_rule_file, problems_of

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "alert-rules.yaml"


def fields_of(**rule: object) -> dict[str, str]:
    base: dict[str, object] = {"name": "r", "metric": "ops.latency_p95", "comparator": ">", "threshold": 1.0}
    base.update(rule)
    with pytest.raises(ValidationError) as info:
        RuleSpec.model_validate(base)
    return {p.field: p.message for p in problems_of(info.value)}


def test_a_valid_rule_and_its_defaults() -> None:
    spec = RuleSpec.model_validate({"name": "slow", "metric": "ops.latency_p95", "comparator": ">",
                                    "threshold": 2500, "cooldown": "6h"})
    assert (spec.field, spec.segment, spec.for_windows, spec.cooldown, spec.severity) == (
        "value", "all", 1, 6 * 3600, "warning")
    params = spec.params()
    assert params.condition.comparator == ">" and params.cooldown.total_seconds() == 21600


@pytest.mark.parametrize(("override", "field", "fragment"), [
    ({"metric": "ops.nope"}, "metric", "unknown metric 'ops.nope'"),
    ({"comparator": "=>"}, "comparator", "'>'"),
    ({"threshold": "high"}, "threshold", "number"),
    ({"threshold": float("nan")}, "threshold", "finite"),
    ({"for_windows": 0}, "for_windows", "greater than or equal to 1"),
    ({"cooldown": "soon"}, "cooldown", "not a duration"),
    ({"cooldown": "90d"}, "cooldown", "between 0 and 30 days"),
    ({"severity": "page"}, "severity", "'critical'"),
    ({"name": "Has Spaces"}, "name", "pattern"),
    ({"segment": "model_version"}, "segment", "pattern"),
    ({"field": "p_value"}, "rule", "has no p_value"),
    ({"colour": "red"}, "colour", "Extra inputs"),
    ({"actions": [{"type": "webhook", "endpoints": []}]}, "actions[0].endpoints", "at least 1"),
    ({"actions": [{"type": "page"}]}, "actions[0]", "tag 'page'"),
    ({"actions": [{"type": "webhook", "endpoints": ["a", "a"]}]}, "actions[0].endpoints", "listed twice"),
])
def test_invalid_rules_are_refused_naming_the_field(override: dict[str, object], field: str, fragment: str) -> None:
    problems = fields_of(**override)
    assert field in problems, problems
    assert fragment in problems[field]


def test_consistency_rules() -> None:
    assert "== or !=" in fields_of(metric="drift.prompt.mmd", field="flagged", comparator=">")["rule"]
    assert "between 0 and 1" in fields_of(metric="drift.prompt.mmd", field="p_value", comparator="<",
                                          threshold=5)["rule"]
    ok = RuleSpec.model_validate({"name": "d", "metric": "drift.prompt.mmd", "field": "flagged",
                                  "comparator": "==", "threshold": True})
    assert ok.threshold == 1.0


def test_durations() -> None:
    assert [parse_duration(v) for v in (0, 90, "90s", "30m", "6h", "1d", "1.5h")] == [0, 90, 90, 1800, 21600,
                                                                                     86400, 5400]
    for bad in ("-1m", "1w", True, "", None):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_the_example_file_is_valid() -> None:
    parsed = parse_rule_file(EXAMPLE.read_text())
    assert parsed.project == "shop"
    by_name = {r.name: r for r in parsed.rules}
    assert by_name["prompt-drift"].cooldown == 12 * 3600
    assert by_name["response-drift-per-version"].segment == "model_version=*"
    assert [a.type for a in by_name["prompt-drift"].actions] == ["webhook", "retrain"]


def test_rule_file_errors_name_rule_index_and_field() -> None:
    text = """
rules:
  - {name: ok, metric: ops.error_rate, comparator: ">", threshold: 0.1}
  - {name: bad, metric: ops.error_rate, comparator: ">", threshold: 0.1, for_windows: 0}
  - {name: worse, metric: drift.nothing.mmd, comparator: "<", threshold: 0.1}
"""
    with pytest.raises(RuleFileError) as info:
        parse_rule_file(text)
    fields = {p.field for p in info.value.problems}
    assert fields == {"rules[1].for_windows", "rules[2].metric"}


def test_rule_file_shape_errors() -> None:
    with pytest.raises(RuleFileError, match=r"line 2, column 13: not valid YAML"):
        parse_rule_file("rules:\n  - {name: a: b}\n")
    with pytest.raises(RuleFileError, match="expected a mapping"):
        parse_rule_file("just a string")
    with pytest.raises(RuleFileError, match="appears more than once"):
        parse_rule_file("rules:\n" + "  - {name: a, metric: ops.volume, comparator: '<', threshold: 1}\n" * 2)
    with pytest.raises(RuleFileError, match="larger than"):
        parse_rule_file("#" * (600 * 1024))
    assert parse_rule_file("").rules == []
    # a bare list is accepted
    assert len(parse_rule_file("- {name: a, metric: ops.volume, comparator: '<', threshold: 1}").rules) == 1
