"""The LLM-judge evaluator: rubric in, one call per item (cached, budgeted, deadline-bound), verdicts out.

Failure is graded so the window never pays for the judge:
- one item's garbage reply, refusal (HTTP 4xx) or missing field -> that item's EvalResult has ``error``;
- the endpoint down for every call of a window, or the token budget spent before anything was scored ->
  ``EvaluatorFailed`` with the reason (the stage marks the evaluator failed for the window; the window is
  computed); a budget that runs out part-way leaves the rest as per-item errors saying "budget";
- the per-window deadline reached -> the remaining items error with "deadline", nothing waits longer.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from monitor.evaluators.base import EvalItem, EvalResult, EvaluatorFailed
from monitor.evaluators.judge.client import Completion, DeadlineReached, JudgeCallError, JudgeClient
from monitor.evaluators.judge.rubrics import RUBRICS, Rubric, missing_fields, render
from monitor.evaluators.judge.spend import MemoryLedger, SpendLedger
from monitor.evaluators.judge.verdict import VerdictError, parse_verdict

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from monitor.settings import Settings

BUDGET_MESSAGE = "token budget exhausted"


@dataclass(frozen=True)
class JudgeStats:
    calls: int
    cache_hits: int
    tokens: int
    errors: int
    latencies_s: tuple[float, ...]


class _Cache:
    """Verdicts by (model, rubric, rendered messages): the same question is never paid for twice in a process.
    Across processes, the stage's stored scores (one per event and evaluator version) do the same job."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._d: OrderedDict[str, EvalResult] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> EvalResult | None:
        with self._lock:
            hit = self._d.get(key)
            if hit is not None:
                self._d.move_to_end(key)
            return hit

    def put(self, key: str, value: EvalResult) -> None:
        with self._lock:
            self._d[key] = value
            while len(self._d) > self.size:
                self._d.popitem(last=False)


_SHARED_CACHE = _Cache()


class JudgeEvaluator:
    good_when_high: bool | None = True  # every rubric scores 5 = good

    def __init__(self, client: JudgeClient, *, name: str = "judge", rubric: str | Rubric = "helpfulness",
                 policy: str = "", threshold: float = 0.5, ledger: SpendLedger | None = None,
                 window_deadline_s: float = 120.0, cache: _Cache | None = None,
                 max_calls_per_minute: float | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rubric = rubric if isinstance(rubric, Rubric) else RUBRICS[rubric]
        if self.rubric.name == "policy" and not policy.strip():
            raise ValueError("the policy rubric needs params.policy (the policy text)")
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        self.client = client
        self.name = name
        self.policy = policy
        self.threshold = threshold
        self.fields = self.rubric.fields
        self.ledger: SpendLedger = ledger or MemoryLedger(None)
        self.window_deadline_s = window_deadline_s
        # Rate budget: calls are paced at least 60 / max_calls_per_minute seconds apart (a provider's rate limit,
        # or a shared vLLM the app itself needs); a wait that would pass the window's deadline is not taken.
        self.min_interval_s = 60.0 / max_calls_per_minute if max_calls_per_minute else 0.0
        self._sleep = sleep
        self._last_call: float | None = None
        self.cache = cache or _SHARED_CACHE
        fp = self.rubric.fingerprint(policy)
        self.version = f"{self.rubric.name}-{fp}-{client.model}-t{threshold:g}"[:64]
        self.stats = JudgeStats(0, 0, 0, 0, ())
        self.params: Any = None  # the validated JudgeParams when built from a project's spec (registry)
        self.daily_limit: int | None = self.ledger.limit

    def bind_project(self, session: Session, project_id: int, settings: Settings) -> None:
        """Called by the window stage: the project's persistent budget and, if named, its stored API key.

        On Postgres the ledger commits in transactions of its own (tokens spent on a window that rolls back were
        still paid for, and workers do not queue behind one window's lock); SQLite has one writer, so there the
        ledger writes inside the window's transaction (savepoints)."""
        from sqlalchemy.orm import sessionmaker

        from monitor.evaluators.judge.keys import judge_key
        from monitor.evaluators.judge.spend import SqlLedger

        key_name = getattr(self.params, "api_key_name", None)
        if key_name:
            self.client.set_api_key(judge_key(session, project_id, key_name, settings=settings))
        bind = session.get_bind()
        if bind.dialect.name == "postgresql":
            self.ledger = SqlLedger(sessionmaker(bind=bind), project_id, self.name, self.daily_limit)
        else:
            self.ledger = SqlLedger.in_session(session, project_id, self.name, self.daily_limit)

    def _key(self, messages: list[dict[str, str]]) -> str:
        raw = json.dumps([self.client.model, self.rubric.name, messages], sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()

    def _estimate(self, messages: list[dict[str, str]]) -> int:
        return sum(len(m["content"]) for m in messages) // 4 + self.client.max_tokens

    def _result(self, completion: Completion) -> EvalResult:
        try:
            v = parse_verdict(completion.text)
        except VerdictError as exc:
            return EvalResult(None, None, "", error=f"unusable verdict: {exc}")
        label = v.value >= self.threshold
        why = v.explanation or "(no explanation)"
        return EvalResult(v.value, label, f"{self.rubric.name} {v.score}/5{' ' + v.label if v.label else ''}: "
                                          f"{why}"[:500] + (" [repaired]" if v.repaired else ""))

    def evaluate(self, items: Sequence[EvalItem]) -> list[EvalResult]:
        deadline = time.monotonic() + self.window_deadline_s
        out: list[EvalResult | None] = [None] * len(items)
        calls = hits = tokens = errors = 0
        unreachable = budget_refused = 0
        latencies: list[float] = []
        for i, item in enumerate(items):
            missing = missing_fields(self.rubric, item)
            if missing:
                out[i] = EvalResult(None, None, "", error=f"{self.rubric.name} needs {', '.join(missing)}")
                continue
            messages = render(self.rubric, item, policy=self.policy)
            key = self._key(messages)
            cached = self.cache.get(key)
            if cached is not None:
                out[i], hits = cached, hits + 1
                continue
            if self.min_interval_s and self._last_call is not None:
                wait = self._last_call + self.min_interval_s - time.monotonic()
                if wait > 0 and time.monotonic() + wait >= deadline:
                    out[i] = EvalResult(None, None, "", error="the window's judge deadline was reached before this "
                                                              "item (calls are paced by max_calls_per_minute)")
                    continue
                if wait > 0:
                    self._sleep(wait)
            estimate = self._estimate(messages)
            if not self.ledger.reserve(estimate):
                budget_refused += 1
                limit = self.ledger.limit
                out[i] = EvalResult(None, None, "", error=f"{BUDGET_MESSAGE}: {self.ledger.spent()} of {limit} "
                                                          "tokens spent today; no call made")
                continue
            self._last_call = time.monotonic()
            try:
                completion = self.client.complete(messages, deadline=deadline)
            except DeadlineReached as exc:
                self.ledger.settle(estimate, 0)
                out[i] = EvalResult(None, None, "", error=str(exc))
                continue
            except JudgeCallError as exc:
                self.ledger.settle(estimate, 0)  # nothing was generated (a 4xx or no answer): nothing charged
                unreachable += 1
                out[i] = EvalResult(None, None, "", error=str(exc))
                continue
            calls += 1
            spent = completion.total_tokens or estimate  # a server that reports no usage is charged the estimate
            self.ledger.settle(estimate, spent)
            tokens += spent
            latencies.append(completion.latency_s)
            result = self._result(completion)
            if result.error is None:
                self.cache.put(key, result)
            out[i] = result
        results = [r if r is not None else EvalResult(None, None, "", error="not scored") for r in out]
        errors = sum(r.error is not None for r in results)
        self.stats = JudgeStats(calls, hits, tokens, errors, tuple(latencies))
        scored = sum(r.value is not None for r in results)
        if items and scored == 0 and (calls or unreachable or budget_refused):
            raise _failed(self.name, self._why_nothing(results, calls, unreachable, budget_refused), results)
        return results

    def _why_nothing(self, results: list[EvalResult], calls: int, unreachable: int, budget_refused: int) -> str:
        first = next((r.error for r in results if r.error and " needs " not in r.error), "no reason recorded")
        if budget_refused and not calls and not unreachable:
            return f"{BUDGET_MESSAGE} ({self.ledger.spent()} of {self.ledger.limit} tokens today); no items judged"
        if unreachable and not calls:
            return f"judge endpoint failed for all {unreachable} calls: {first}"
        return f"no usable verdict in {calls} replies: {first}"


def _failed(name: str, message: str, results: list[EvalResult]) -> EvaluatorFailed:
    """EvaluatorFailed with the per-item results attached (``.results``), so a stage may still store why each
    item failed while marking the evaluator failed for the window."""
    exc = EvaluatorFailed(f"{name}: {message}")
    exc.results = results  # type: ignore[attr-defined]
    return exc
