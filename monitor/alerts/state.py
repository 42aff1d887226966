"""Pure rule evaluation: one rule, one segment, the metric rows up to a window → at most one state change.

No database here. The service loads the rows and the current state, calls `decide`, and stores the result.

Semantics (documented in docs/alerts.md):
- A row whose status is not `ok` (e.g. `insufficient`), or whose tested field is empty, neither breaches nor
  recovers: it is skipped, and it does not break a streak of breaching windows either.
- A breach opens a `pending` alert; after `for_windows` consecutive breaching windows it `fires`. A firing
  alert stays firing (no repeated firing per window) until a window recovers: then it is `resolved`. A
  pending alert that recovers before firing is `cancelled`.
- `cooldown` is the least time between two firings of the same rule and segment, measured in window time
  (window starts), so a backfill behaves exactly like live traffic. A breach inside the cooldown waits in
  `pending` and fires at the first breaching window after the cooldown.
- Windows older than the newest window that already changed this rule+segment are ignored (a late
  re-computation of an old window must not resolve or re-fire a newer state).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

Field = Literal["value", "p_value", "flagged"]
Comparator = Literal[">", ">=", "<", "<=", "==", "!="]
State = Literal["inactive", "pending", "firing"]
Target = Literal["pending", "firing", "resolved", "cancelled"]

COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
}


@dataclass(frozen=True)
class Point:
    """The parts of one metric row a rule can test."""

    window_start: datetime
    status: str
    n: int = 0
    value: float | None = None
    p_value: float | None = None
    flagged: bool | None = None
    threshold: float | None = None  # the detector's own threshold, kept as evidence

    def to_dict(self) -> dict[str, object]:
        return {"window_start": self.window_start.isoformat(), "status": self.status, "n": self.n,
                "value": self.value, "p_value": self.p_value, "flagged": self.flagged, "threshold": self.threshold}


@dataclass(frozen=True)
class Condition:
    field: Field
    comparator: Comparator
    threshold: float

    def observed(self, point: Point) -> float | None:
        raw = getattr(point, self.field)
        if raw is None:
            return None
        x = float(raw)  # flagged: True/False → 1.0/0.0
        return x if math.isfinite(x) else None

    def breached(self, point: Point) -> bool | None:
        """True/False, or None when the row says nothing (not `ok`, or the tested field is empty)."""
        if point.status != "ok":
            return None
        x = self.observed(point)
        if x is None:
            return None
        return COMPARATORS[self.comparator](x, self.threshold)

    def describe(self) -> str:
        return f"{self.field} {self.comparator} {self.threshold:g}"


@dataclass(frozen=True)
class RuleParams:
    condition: Condition
    for_windows: int = 1
    cooldown: timedelta = timedelta(0)


@dataclass(frozen=True)
class AlertState:
    status: State = "inactive"
    last_change_window: datetime | None = None  # newest window that changed this rule+segment
    last_fired_window: datetime | None = None


@dataclass(frozen=True)
class Decision:
    window_start: datetime
    from_status: State
    to_status: Target | None  # None: nothing changes
    streak: int
    reason: str
    evidence: tuple[Point, ...] = field(default_factory=tuple)

    @property
    def changed(self) -> bool:
        return self.to_status is not None


def _streak(condition: Condition, ordered: Sequence[Point], limit: int) -> tuple[int, tuple[Point, ...]]:
    """Consecutive breaching rows ending at the newest, skipping rows that say nothing; capped at `limit`."""
    count, used = 0, []
    for point in reversed(ordered):
        verdict = condition.breached(point)
        if verdict is None:
            continue
        if not verdict:
            break
        count += 1
        used.append(point)
        if count >= limit:
            break
    return count, tuple(reversed(used))


def decide(rule: RuleParams, state: AlertState, history: Sequence[Point], window_start: datetime) -> Decision:
    """The state change (if any) that evaluating `rule` at `window_start` causes.

    `history` holds this metric's rows for one segment, any order; rows after `window_start` are ignored.
    """
    ordered = sorted((p for p in history if p.window_start <= window_start), key=lambda p: p.window_start)
    current = ordered[-1] if ordered and ordered[-1].window_start == window_start else None

    def stay(reason: str, streak: int = 0, evidence: tuple[Point, ...] = ()) -> Decision:
        return Decision(window_start, state.status, None, streak, reason, evidence)

    if state.last_change_window is not None and window_start < state.last_change_window:
        return stay(f"stale: a newer window ({state.last_change_window.isoformat()}) already changed this alert")
    if current is None:
        return stay("no metric row for this window")
    verdict = rule.condition.breached(current)
    if verdict is None:
        why = f"status {current.status}" if current.status != "ok" else f"{rule.condition.field} is empty"
        return stay(f"skipped: {why}; neither breaches nor recovers", evidence=(current,))

    if not verdict:
        observed = rule.condition.observed(current)
        reason = f"recovered: {rule.condition.field}={observed:g}, rule {rule.condition.describe()}"
        if state.status == "firing":
            return Decision(window_start, state.status, "resolved", 0, reason, (current,))
        if state.status == "pending":
            return Decision(window_start, state.status, "cancelled", 0, reason, (current,))
        return stay("ok", evidence=(current,))

    streak, evidence = _streak(rule.condition, ordered, rule.for_windows)
    observed = rule.condition.observed(current)
    breach = f"{rule.condition.field}={observed:g} breaches {rule.condition.describe()}"
    if state.status == "firing":
        return stay(f"still firing: {breach}", streak, evidence)
    if streak < rule.for_windows:
        reason = f"{breach} ({streak} of {rule.for_windows} windows)"
        target: Target | None = "pending" if state.status == "inactive" else None
        return Decision(window_start, state.status, target, streak, reason, evidence)
    if state.last_fired_window is not None and window_start - state.last_fired_window < rule.cooldown:
        until = state.last_fired_window + rule.cooldown
        reason = f"{breach}; in cooldown until window {until.isoformat()}"
        target = "pending" if state.status == "inactive" else None
        return Decision(window_start, state.status, target, streak, reason, evidence)
    reason = f"{breach} for {streak} consecutive window(s)"
    return Decision(window_start, state.status, "firing", streak, reason, evidence)
