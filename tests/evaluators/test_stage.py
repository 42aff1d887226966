"""The evaluators stage on both backends: metric rows per window and segment with intervals, scores stored once
per (event, evaluator version) and reused on recompute, and an evaluator that fails leaving the window computed
and itself marked failed."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.evaluators import registry
from monitor.evaluators.base import EvalItem, EvalResult, EvaluatorFailed, scored
from monitor.evaluators.models import EvalScore
from monitor.ingest.service import ingest_events
from monitor.pipeline.models import MetricValue, WindowState
from monitor.projects.service import get_or_create_project
from monitor.runner import process_window, run_pending
from monitor.schemas import EventIn
from tests.support.factories import unique_slug

T0 = datetime(2026, 11, 20, 8, tzinfo=UTC)
REFUSALS = ["I'm sorry, but I can't help with that request.", "I cannot provide instructions for that.",
            "As an AI language model, I must decline to answer this."]
ANSWERS = ["Open Settings, choose Security, then press Reset password.", "Your order ships today by courier.",
           "The capital of France is Paris, on the Seine."]


@dataclass
class Counting:
    """A test evaluator that records every event it is asked to score, and can be told to fail."""

    name: str
    version: str = "c1"
    fields: frozenset[str] = frozenset({"response"})
    good_when_high: bool | None = None
    seen: list[int] = field(default_factory=list)
    fail: str | None = None

    def evaluate(self, items: Sequence[EvalItem]) -> list[EvalResult]:
        if self.fail:
            raise EvaluatorFailed(self.fail)
        self.seen.extend(i.event_id for i in items)
        return [scored(float(len(i.response or "") % 2), 0.5, "odd length") for i in items]


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counting]:
    made = Counting("counting")

    def factory(spec: object, settings: object) -> Counting:
        made.name = spec.name  # type: ignore[attr-defined]
        return made

    monkeypatch.setitem(registry.BUILTINS, "counting", factory)
    yield made


def _seed(s: Session, evaluators: list[dict[str, object]], n: int = 90) -> int:
    project = get_or_create_project(s, unique_slug())
    project.config = {"evaluators": evaluators, "segment_keys": ["locale"], "min_samples": 10}
    events = [EventIn(event_id=f"e{i}", timestamp=T0 + timedelta(seconds=3000 * i / n), prompt=f"Question {i}?",
                      response=(REFUSALS if i % 3 == 0 else ANSWERS)[i % 3 if i % 3 else (i // 3) % 3],
                      metadata={"locale": "de" if i % 2 else "en"}) for i in range(n)]
    ingest_events(s, project.id, events)
    s.commit()
    return project.id


def _row(s: Session, pid: int, metric: str, segment: str = "all") -> MetricValue:
    row = s.scalar(select(MetricValue).where(MetricValue.project_id == pid, MetricValue.metric == metric,
                                             MetricValue.segment == segment))
    assert row is not None, f"{metric} {segment}"
    return row


def test_refusal_rows_per_segment_with_intervals(session_maker: sessionmaker[Session]) -> None:
    with session_maker() as s:
        pid = _seed(s, [{"kind": "refusal"}])
    process_window(pid, T0, factory=session_maker, only=["evaluators"])
    with session_maker() as s:
        rate = _row(s, pid, "eval.refusal.rate")
        # Every third event is a refusal; the phrase rules find each and no answer.
        assert rate.status == "ok" and rate.value == pytest.approx(1 / 3) and rate.n == 90
        assert rate.details["rate_ci_low"] < 1 / 3 < rate.details["rate_ci_high"]
        assert rate.threshold == 0.5 and rate.details["evaluator_status"] == "ok"
        mean = _row(s, pid, "eval.refusal.mean")
        assert mean.details["mean_ci_low"] <= mean.value <= mean.details["mean_ci_high"]
        assert _row(s, pid, "eval.refusal.coverage").value == 1.0
        en, de = _row(s, pid, "eval.refusal.rate", "locale=en"), _row(s, pid, "eval.refusal.rate", "locale=de")
        assert en.n == de.n == 45 and en.value is not None and de.value is not None
        assert (en.value * 45 + de.value * 45) == pytest.approx(30)


def test_scores_stored_once_and_reused(session_maker: sessionmaker[Session], counting: Counting) -> None:
    with session_maker() as s:
        pid = _seed(s, [{"kind": "counting", "name": "odd"}])
    process_window(pid, T0, factory=session_maker, only=["evaluators"])
    assert sorted(counting.seen) == sorted(set(counting.seen)) and len(counting.seen) == 90
    with session_maker() as s:
        stored = s.scalar(select(func.count()).select_from(EvalScore).where(EvalScore.project_id == pid))
        first = _row(s, pid, "eval.odd.mean").value
    assert stored == 90
    process_window(pid, T0, factory=session_maker, only=["evaluators"])  # recompute: nothing evaluated again
    assert len(counting.seen) == 90
    with session_maker() as s:
        assert _row(s, pid, "eval.odd.mean").value == first
    counting.version = "c2"  # a new version is a new series: every event scored once more
    process_window(pid, T0, factory=session_maker, only=["evaluators"])
    assert len(counting.seen) == 180


def test_sample_share_scores_a_stable_subset(session_maker: sessionmaker[Session], counting: Counting) -> None:
    with session_maker() as s:
        pid = _seed(s, [{"kind": "counting", "name": "odd", "sample_share": 0.3}], n=200)
    process_window(pid, T0, factory=session_maker, only=["evaluators"])
    first = set(counting.seen)
    # A hash-rank share: about 30% of 200 (binomial sd ~6.5), and the same events on every run.
    assert 40 <= len(first) <= 80
    with session_maker() as s:
        assert _row(s, pid, "eval.odd.coverage").n == len(first)
        assert _row(s, pid, "eval.odd.mean").details["events"] == 200
    counting.version = "c2"  # rescoring everything picks the very same events
    process_window(pid, T0, factory=session_maker, only=["evaluators"])
    assert set(counting.seen[len(first):]) == first


def test_failing_evaluator_leaves_window_computed(session_maker: sessionmaker[Session], counting: Counting) -> None:
    counting.fail = "judge endpoint refused the connection"
    with session_maker() as s:
        pid = _seed(s, [{"kind": "counting", "name": "judge"}, {"kind": "refusal"}])
    assert run_pending(factory=session_maker, project_ids=[pid]).failures == []  # every stage, as beat would
    with session_maker() as s:
        state = s.get(WindowState, (pid, T0))
        assert state is not None and state.computed_at is not None
        mean = _row(s, pid, "eval.judge.mean")
        assert mean.status == "error" and mean.value is None
        assert mean.details["evaluator_status"] == "failed"
        assert "judge endpoint refused the connection" in mean.details["message"]
        coverage = _row(s, pid, "eval.judge.coverage")
        assert coverage.status == "ok" and coverage.value == 0.0
        # The other evaluator and the other stages are unaffected.
        assert _row(s, pid, "eval.refusal.rate").status == "ok"
        assert _row(s, pid, "ops.volume").value == 90


def test_erasure_deletes_evaluator_scores(session_maker: sessionmaker[Session]) -> None:
    """Evaluator explanations may quote a response: erasing an event erases its scores too."""
    from monitor.privacy.erasure import Selector, erase_events

    with session_maker() as s:
        pid = _seed(s, [{"kind": "degenerate"}], n=30)
    process_window(pid, T0, factory=session_maker, only=["evaluators"])

    def stored() -> int:
        with session_maker() as s:
            return int(s.scalar(select(func.count()).select_from(EvalScore).where(EvalScore.project_id == pid)) or 0)

    assert stored() == 30
    assert erase_events(session_maker, pid, Selector(event_ids=("e0", "e1")), dry_run=True).scores == 2
    report = erase_events(session_maker, pid, Selector(event_ids=("e0", "e1")))
    assert stored() == 28 and report.scores == 2
