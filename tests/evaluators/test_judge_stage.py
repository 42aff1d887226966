"""The judge through the evaluators stage: verdicts stored and charged to the project's budget; an endpoint that
answers garbage or is down leaves the window computed, the judge marked failed, and its stopped-rule firing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerts.models import Alert
from monitor.evaluators.judge.models import JudgeSpend
from monitor.evaluators.models import EvalScore
from monitor.ingest.service import ingest_events
from monitor.pipeline.models import MetricValue
from monitor.projects.config_service import change_config
from monitor.projects.service import get_or_create_project
from monitor.runner import process_window
from monitor.schemas import EventIn
from tests.evaluators.judge_server import judge_server
from tests.support.factories import unique_slug

T0 = datetime(2026, 11, 9, tzinfo=UTC)


def _events(s: Session, pid: int, k: int, n: int = 30) -> None:
    start = T0 + timedelta(hours=k)
    tag = unique_slug()  # texts differ per test: the judge's process-wide cache must not answer for it
    ingest_events(s, pid, [EventIn(event_id=f"w{k}e{i}", timestamp=start + timedelta(seconds=60 * i),
                                   prompt=f"Question {tag}.{i}?",
                                   response=f"Answer {i} " + ("wrong" if i % 3 else "ok")) for i in range(n)])
    s.commit()


def _row(s: Session, pid: int, metric: str, k: int) -> MetricValue:
    row = s.scalar(select(MetricValue).where(MetricValue.project_id == pid, MetricValue.metric == metric,
                                             MetricValue.segment == "all",
                                             MetricValue.window_start == T0 + timedelta(hours=k)))
    assert row is not None, metric
    return row


@pytest.mark.parametrize("mode", ["garbage", "error500"])
def test_judge_failure_leaves_window_computed_and_pages(session_maker: sessionmaker[Session], mode: str) -> None:
    with judge_server() as server, session_maker() as s:
        project = get_or_create_project(s, unique_slug())
        change_config(s, project, {"min_samples": 10, "evaluators": [{
            "kind": "judge", "params": {"base_url": server.url, "model": "m", "rubric": "helpfulness",
                                        "max_tokens_per_day": 1_000_000, "min_coverage": 0.8}}]},
                      actor="test", source="test")
        s.commit()
        pid = project.id
        _events(s, pid, 0)
        process_window(pid, T0, factory=session_maker, only=["ops", "evaluators"])
        s.expire_all()
        mean = _row(s, pid, "eval.judge.mean", 0)
        assert mean.status == "ok" and mean.details["evaluator_status"] == "ok"
        assert mean.value == pytest.approx(10 / 30)  # the scripted judge: "wrong" answers 0, others 1
        assert s.scalar(select(func.count()).select_from(EvalScore).where(EvalScore.project_id == pid)) == 30
        spend = s.scalar(select(JudgeSpend).where(JudgeSpend.project_id == pid))
        assert spend is not None and spend.tokens == 30 * 120 and spend.calls == 30

        server.mode = mode  # the endpoint breaks
        _events(s, pid, 1)
        process_window(pid, T0 + timedelta(hours=1), factory=session_maker, only=["ops", "evaluators"])
        s.expire_all()
        assert _row(s, pid, "ops.volume", 1).value == 30  # the window is computed
        failed = _row(s, pid, "eval.judge.mean", 1)
        assert failed.status == "error" and failed.details["evaluator_status"] == "failed"
        assert ("no usable verdict" if mode == "garbage" else "HTTP 500") in failed.details["message"]
        assert _row(s, pid, "eval.judge.coverage", 1).value == 0.0
        firing = s.scalars(select(Alert.rule_name).where(Alert.project_id == pid, Alert.status == "firing")).all()
        assert list(firing) == ["eval-judge-stopped"]
        # Nothing from the broken window was stored: a recompute after the endpoint recovers asks again.
        assert s.scalar(select(func.count()).select_from(EvalScore).where(EvalScore.project_id == pid)) == 30
        server.mode = "json"
        process_window(pid, T0 + timedelta(hours=1), factory=session_maker, only=["evaluators"])
        s.expire_all()
        assert _row(s, pid, "eval.judge.coverage", 1).value == 1.0
