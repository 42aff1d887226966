"""The alert rule schema (API bodies and YAML files share it) and YAML loading.

Every refusal names the field it is about (`rules[2].threshold`, `actions[0].endpoints[1]`), so a rule file
kept in version control can be fixed from the error alone.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from monitor.alerts.state import Comparator, Condition, RuleParams
from monitor.alerts.state import Field as TestedField
from monitor.errors import FieldErrors
from monitor.metrics.catalog import get_metric
from monitor.schemas import NulFreeModel
from monitor.yaml_input import YAMLInputError, load_untrusted

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, description="1-64 chars of a-z, 0-9, '_', '.', '-'.")]
SEGMENT_PATTERN = r"^(all|[A-Za-z0-9_.\-*?]{1,96}=[^\x00-\x1f]{1,200})$"
MAX_COOLDOWN = 30 * 86_400
MAX_RULES_PER_FILE = 500
MAX_YAML_BYTES = 64 * 1024  # the cap of every non-ingest request body (monitor/api/body_cap.py)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86_400, None: 1}


def parse_duration(value: object) -> int:
    """Seconds from `90`, `90s`, `30m`, `6h` or `1d`."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string such as 30m, 6h or 1d")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNIT[m.group(2)]
    else:
        raise ValueError(f"{value!r} is not a duration: use seconds or a string such as 30m, 6h or 1d")
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_COOLDOWN:
        raise ValueError(f"a duration must be between 0 and {MAX_COOLDOWN // 86_400} days")
    return int(seconds)


def known_metric(name: str) -> str:
    """The name, if it is in the metric catalog; else a clear error."""
    try:
        get_metric(name)
    except KeyError as exc:
        raise ValueError(f"{exc.args[0]} (the full list: GET /v1/metrics/catalog)") from None
    return name


class WebhookAction(NulFreeModel):
    """Send `alert.firing` and `alert.resolved` to these endpoints (by name)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["webhook"] = "webhook"
    endpoints: list[Name] = Field(min_length=1, max_length=10)

    @field_validator("endpoints")
    @classmethod
    def _distinct(cls, names: list[str]) -> list[str]:
        if len(set(names)) != len(names):
            raise ValueError("an endpoint is listed twice")
        return names


class RetrainAction(NulFreeModel):
    """Ask for one retraining job per firing (handled by the retraining pipeline's registered handler)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["retrain"] = "retrain"
    params: dict[str, Any] = Field(default_factory=dict, description="Passed to the retraining handler.")

    @field_validator("params")
    @classmethod
    def _small(cls, params: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(params, default=str)) > 4096:
            raise ValueError("params must serialize to at most 4096 bytes of JSON")
        return params


Action = Annotated[WebhookAction | RetrainAction, Field(discriminator="type")]


class RuleSpec(NulFreeModel):
    """One alert rule."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    description: str = Field("", max_length=1000)
    enabled: bool = True
    metric: str = Field(max_length=96, description="A metric name from GET /v1/metrics/catalog.")
    field: TestedField = Field("value", description="value (default), p_value or flagged (the detector's verdict).")
    comparator: Comparator
    threshold: float = Field(description="Compared with the field; for `flagged`, true/false (or 1/0).")
    segment: str = Field(
        "all", max_length=320, pattern=SEGMENT_PATTERN,
        description="`all`, an exact label such as model_version=v2, or a glob such as model_version=* "
        "(then each matching segment has its own alert).",
    )
    for_windows: int = Field(1, ge=1, le=100, description="Consecutive breaching windows before firing.")
    cooldown: int = Field(0, description="Least time between two firings: seconds, or 30m, 6h, 1d.")
    severity: Literal["info", "warning", "critical"] = "warning"
    actions: list[Action] = Field(default_factory=list, max_length=10)

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, name: str) -> str:
        return known_metric(name)

    @field_validator("threshold")
    @classmethod
    def _finite(cls, x: float) -> float:
        if not math.isfinite(x):
            raise ValueError("threshold must be a finite number")
        return x

    @field_validator("cooldown", mode="before")
    @classmethod
    def _duration(cls, value: object) -> int:
        return parse_duration(value)

    @model_validator(mode="after")
    def _consistent(self) -> RuleSpec:
        if self.field == "flagged":
            if self.comparator not in ("==", "!="):
                raise ValueError("field 'flagged' is true/false: use comparator == or !=")
            if self.threshold not in (0.0, 1.0):
                raise ValueError("field 'flagged' is compared with true or false")
        if self.field == "p_value" and not 0.0 <= self.threshold <= 1.0:
            raise ValueError("a p_value threshold must be between 0 and 1")
        if self.field in ("p_value", "flagged") and get_metric(self.metric).kind in ("ops", "feedback"):
            raise ValueError(f"metric {self.metric!r} has no {self.field}; test its value")
        if sum(isinstance(a, RetrainAction) for a in self.actions) > 1:
            raise ValueError("actions: 'retrain' may appear once")
        return self

    def params(self) -> RuleParams:
        from datetime import timedelta

        return RuleParams(Condition(self.field, self.comparator, self.threshold), self.for_windows,
                          timedelta(seconds=self.cooldown))

    def endpoint_names(self) -> list[tuple[str, str]]:
        """(field path, endpoint name) for every endpoint the actions name."""
        return [(f"actions[{i}].endpoints[{j}]", name) for i, a in enumerate(self.actions)
                if isinstance(a, WebhookAction) for j, name in enumerate(a.endpoints)]


class RuleFile(NulFreeModel):
    """A YAML rule file: `project:` (optional; the CLI option wins) and `rules:`."""

    model_config = ConfigDict(extra="forbid")
    project: str | None = Field(None, max_length=64)
    rules: list[RuleSpec] = Field(default_factory=list, max_length=MAX_RULES_PER_FILE)

    @model_validator(mode="after")
    def _unique_names(self) -> RuleFile:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"rule name {rule.name!r} appears more than once")
            seen.add(rule.name)
        return self


@dataclass(frozen=True)
class FieldProblem:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class RuleFileError(FieldErrors):
    """A rule file that cannot be used, with every problem found (each naming its field)."""

    def __init__(self, problems: list[FieldProblem]):
        super().__init__(problems)
        self.problems: list[FieldProblem] = problems


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in ("webhook", "retrain"):  # discriminated-union tags are not part of the user's path
            out += f".{part}" if out else str(part)
    return out


def problems_of(exc: ValidationError, prefix: str = "") -> list[FieldProblem]:
    """Pydantic errors as field/message pairs, without echoing input values."""
    out = []
    for e in exc.errors(include_input=False, include_url=False, include_context=False)[:50]:
        path = _loc(tuple(e["loc"]))
        field = f"{prefix}.{path}" if prefix and path else (prefix or path or "rule")
        out.append(FieldProblem(field, e["msg"].removeprefix("Value error, ")))
    return out


def parse_rule_file(text: str | bytes) -> RuleFile:
    """Parse and validate a YAML rule file; raises RuleFileError."""
    try:
        # No aliases/anchors, nesting <= 32: an alias bomb is refused before anything is expanded (issue #18).
        data = load_untrusted(text, max_bytes=MAX_YAML_BYTES)
    except YAMLInputError as exc:
        raise RuleFileError([FieldProblem(exc.where, exc.message)]) from None
    if data is None:
        data = {}
    if isinstance(data, list):  # a bare list of rules is accepted too
        data = {"rules": data}
    if not isinstance(data, dict):
        raise RuleFileError([FieldProblem("file", "expected a mapping with a `rules:` list")])
    try:
        return RuleFile.model_validate(data)
    except ValidationError as exc:
        raise RuleFileError(problems_of(exc)) from None
