"""The LLM judge against a real local HTTP judge: verdicts, caching, budgets, garbage, outages, deadlines."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from monitor.evaluators.base import EvalItem, EvaluatorFailed
from monitor.evaluators.judge.client import JudgeClient
from monitor.evaluators.judge.evaluator import BUDGET_MESSAGE, JudgeEvaluator, _Cache
from monitor.evaluators.judge.spend import MemoryLedger
from monitor.evaluators.judge.verdict import VerdictError, parse_verdict
from tests.evaluators.judge_server import JudgeServer, judge_server


@pytest.fixture
def server() -> Iterator[JudgeServer]:
    with judge_server() as s:
        yield s


def items(n: int, *, wrong_every: int = 2, reference: bool = True) -> list[EvalItem]:
    return [EvalItem(i, f"question {i}?", f"answer {i} " + ("wrong" if i % wrong_every == 0 else "right"), None,
                     f"reference {i}" if reference else None, None, None) for i in range(n)]


def judge(url: str, **kw: object) -> JudgeEvaluator:
    client = JudgeClient(url, "judge-model", api_key="sk-test", timeout_s=float(kw.pop("timeout_s", 5.0)),  # type: ignore[arg-type]
                         max_attempts=int(kw.pop("attempts", 2)))  # type: ignore[call-overload]
    return JudgeEvaluator(client, rubric=str(kw.pop("rubric", "correctness")), cache=_Cache(),  # type: ignore[arg-type]
                          **kw)  # type: ignore[arg-type]


def test_verdicts_scored_with_schema_and_key(server: JudgeServer) -> None:
    ev = judge(server.url)
    results = ev.evaluate(items(6))
    assert [r.value for r in results] == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    assert [r.label for r in results] == [False, True, False, True, False, True]
    assert all(r.error is None and r.explanation.startswith("correctness") for r in results)
    body = server.requests[0]
    assert body["response_format"]["type"] == "json_schema" and body["_auth"] == "Bearer sk-test"
    assert "<reference_answer>" in body["messages"][-1]["content"]
    assert ev.stats.calls == 6 and ev.stats.tokens == 6 * 120


def test_same_inputs_not_asked_twice(server: JudgeServer) -> None:
    ev = judge(server.url)
    ev.evaluate(items(4))
    ev.evaluate(items(4))  # a recompute of the window
    assert len(server.requests) == 4 and ev.stats.cache_hits == 4
    other_rubric = judge(server.url, rubric="helpfulness")
    other_rubric.cache = ev.cache
    other_rubric.evaluate(items(4))
    assert len(server.requests) == 8  # another rubric is another question


def test_server_without_schema_support_is_asked_plainly_once(server: JudgeServer) -> None:
    server.mode = "no_schema"
    ev = judge(server.url)
    results = ev.evaluate(items(3))
    assert all(r.value is not None for r in results)
    with_schema = [r for r in server.requests if "response_format" in r]
    assert len(with_schema) == 1 and len(server.requests) == 4  # one refusal, then three plain calls


def test_fenced_json_repaired(server: JudgeServer) -> None:
    server.mode = "fenced"
    results = judge(server.url).evaluate(items(2))
    assert [r.value for r in results] == [0.0, 1.0]
    assert all("[repaired]" in r.explanation for r in results)


def test_budget_stops_spending_and_says_so(server: JudgeServer) -> None:
    # Each call reserves ~(prompt chars / 4 + 200) tokens and is charged 120; room for about three calls.
    ledger = MemoryLedger(limit=700)
    ev = judge(server.url, ledger=ledger)
    results = ev.evaluate(items(8))
    made = len(server.requests)
    assert 1 <= made < 8
    assert ledger.spent() == 120 * made <= 700
    refused = [r for r in results if r.error]
    assert len(refused) == 8 - made and all(BUDGET_MESSAGE in (r.error or "") for r in refused)
    # The next window: nothing left, no call at all, and the evaluator fails saying why.
    ledger2 = MemoryLedger(limit=700)
    ledger2.reserve(700)
    with pytest.raises(EvaluatorFailed, match=BUDGET_MESSAGE):
        judge(server.url, ledger=ledger2).evaluate(items(3))
    assert len(server.requests) == made


def test_garbage_replies_fail_the_evaluator_with_item_errors(server: JudgeServer) -> None:
    server.mode = "garbage"
    with pytest.raises(EvaluatorFailed, match="no usable verdict") as info:
        judge(server.url).evaluate(items(3))
    results = info.value.results  # type: ignore[attr-defined]
    assert len(results) == 3 and all(r.value is None and "unusable verdict" in r.error for r in results)


def test_server_errors_retried_then_evaluator_failed(server: JudgeServer) -> None:
    server.mode = "error500"
    with pytest.raises(EvaluatorFailed, match="HTTP 500"):
        judge(server.url, attempts=3).evaluate(items(2))
    assert len(server.requests) == 6  # three attempts per item


def test_endpoint_down_fails_the_evaluator() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(EvaluatorFailed, match="unreachable"):
        judge(f"http://127.0.0.1:{port}", attempts=2).evaluate(items(2))


def test_hanging_judge_cannot_outlast_the_window_deadline(server: JudgeServer) -> None:
    server.mode = "hang"
    ev = judge(server.url, timeout_s=30.0, attempts=1, window_deadline_s=1.0)
    with pytest.raises(EvaluatorFailed) as info:
        ev.evaluate(items(5))
    errors = [r.error for r in info.value.results]  # type: ignore[attr-defined]
    assert "timed out" in errors[0]  # the request timeout was cut to the deadline ...
    assert all("deadline" in e for e in errors[1:])  # ... and nothing else was tried after it
    assert len(server.requests) == 1


def test_missing_fields_are_item_errors_not_calls(server: JudgeServer) -> None:
    results = judge(server.url).evaluate(items(2, reference=False))
    assert all(r.error == "correctness needs reference" for r in results) and not server.requests


@pytest.mark.parametrize("text,score", [
    ('{"score": 4, "label": "ok", "explanation": "fine"}', 4),
    ('Here you go: {"score": "2", "label": "meh", "explanation": "x"} done', 2),
    ("Score: 3/5 because it is partly right", 3),
])
def test_parse_verdict_repairs(text: str, score: int) -> None:
    assert parse_verdict(text).score == score


@pytest.mark.parametrize("text", ["", "turtles", '{"score": 9, "label": "x", "explanation": "y"}',
                                  '{"score": 2.5}', '{"label": "x"}'])
def test_parse_verdict_rejects(text: str) -> None:
    with pytest.raises(VerdictError):
        parse_verdict(text)


def test_version_changes_with_rubric_policy_model_threshold(server: JudgeServer) -> None:
    a = judge(server.url, rubric="policy", policy="No medical advice.")
    b = judge(server.url, rubric="policy", policy="No legal advice.")
    c = judge(server.url, rubric="policy", policy="No medical advice.", threshold=0.75)
    assert len({a.version, b.version, c.version}) == 3
    with pytest.raises(ValueError, match="policy"):
        judge(server.url, rubric="policy")


def test_calls_paced_by_the_rate_budget(server: JudgeServer) -> None:
    """At 600 calls/minute, consecutive calls are at least 0.1 s apart: the evaluator asks to wait for the rest
    (recorded, not slept, here), never more than the interval, and only between calls."""
    waits: list[float] = []
    client = JudgeClient(server.url, "judge-model", max_attempts=1)
    ev = JudgeEvaluator(client, rubric="helpfulness", cache=_Cache(), max_calls_per_minute=600, sleep=waits.append)
    results = ev.evaluate(items(4))
    assert all(r.value is not None for r in results) and len(server.requests) == 4
    assert len(waits) <= 3 and all(0 < w <= 0.1 for w in waits)
    # A pace whose next slot lies past the window's deadline leaves the rest as deadline errors, without waiting.
    slow = JudgeEvaluator(client, rubric="helpfulness", cache=_Cache(), max_calls_per_minute=1,
                          window_deadline_s=5, sleep=waits.append)
    out = slow.evaluate(items(3, wrong_every=5))
    assert out[0].value is not None and all("deadline" in (r.error or "") for r in out[1:])
    assert len(waits) <= 3
