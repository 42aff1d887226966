"""What a demo run reports: one outcome per stage (asserted by the tests, printed by the CLI as a table), plus
the values the stages found (drift windows, the retraining job, gate results, served versions, links)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Progress = Callable[[str, int, int], None]  # (bar, done, total)
StageFn = Callable[[], tuple[bool, str]]  # -> (ok, one line saying what happened)


@dataclass
class StageResult:
    name: str
    ok: bool
    detail: str
    seconds: float


@dataclass
class DemoReport:
    stages: list[StageResult] = field(default_factory=list)
    mode: str = "embedded"  # embedded | production
    project: str = ""
    database_url: str = ""
    collector_url: str = ""
    drift_detected: bool = False
    drift_windows: list[str] = field(default_factory=list)
    explanation_examples: list[str] = field(default_factory=list)
    events_stored: int = 0
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.stages)

    def stage(self, name: str, fn: StageFn) -> bool:
        """Run one stage, record its outcome and time; a stage that raises is reported as failed, not re-raised
        (the demo shows what went wrong in its table instead of a traceback)."""
        started = time.perf_counter()
        try:
            ok, detail = fn()
        except Exception as exc:
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        self.stages.append(StageResult(name, ok, detail, time.perf_counter() - started))
        return ok

    def outcome(self, name: str) -> StageResult | None:
        return next((s for s in self.stages if s.name == name), None)


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
    """Poll `predicate()` until it is truthy (returned) or `timeout` seconds pass (its last value returned)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)  # the polling interval; the deadline bounds the wait
