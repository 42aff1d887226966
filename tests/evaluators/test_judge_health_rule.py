"""The default judge-health rules end to end: created when an evaluator is added, fed by the evaluators stage's
agreement and coverage rows, and firing when agreement with people is degraded on purpose."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerts.evaluation import evaluate_window
from monitor.alerts.models import Alert, AlertRule
from monitor.ingest.service import ingest_events, ingest_feedback
from monitor.pipeline.models import MetricValue
from monitor.projects.config_service import change_config
from monitor.projects.service import get_or_create_project
from monitor.runner import process_window
from monitor.schemas import EventIn, FeedbackIn
from tests.evaluators.test_stage import ANSWERS, REFUSALS
from tests.support.factories import unique_slug

T0 = datetime(2026, 11, 2, tzinfo=UTC)
PER_WINDOW = 80


def _window(s: Session, pid: int, k: int, rng: random.Random, *, degraded: bool) -> None:
    """80 events, a third refusals; users thumb refusals down and answers up (10% noise) - or, degraded, at
    random: the refusal evaluator then no longer predicts what people think."""
    start = T0 + timedelta(hours=k)
    events, feedback = [], []
    for i in range(PER_WINDOW):
        refusal = i % 3 == 0
        eid = f"w{k}e{i}"
        events.append(EventIn(event_id=eid, timestamp=start + timedelta(seconds=40 * i), prompt=f"Question {i}?",
                              response=(REFUSALS if refusal else ANSWERS)[i % 3]))
        good = rng.random() < 0.5 if degraded else (not refusal) ^ (rng.random() < 0.1)
        if i % 9 == 3 and not degraded:  # some refusals get a correction instead of a thumb down
            feedback.append(FeedbackIn(feedback_id=f"f{eid}", event_id=eid, corrected_response="Better answer."))
        else:
            thumb = "thumbs_up" if good else "thumbs_down"
            feedback.append(FeedbackIn(feedback_id=f"f{eid}", event_id=eid, label=thumb))
    ingest_events(s, pid, events)
    ingest_feedback(s, pid, feedback)
    s.commit()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_agreement_rule_fires_when_degraded_on_purpose(session_maker: sessionmaker[Session]) -> None:
    with session_maker() as s:
        project = get_or_create_project(s, unique_slug())
        change_config(s, project, {"evaluators": [{"kind": "refusal"}], "min_samples": 10}, actor="test",
                      source="test")
        s.commit()
        pid = project.id
        rules = {r.name: r for r in s.scalars(select(AlertRule).where(AlertRule.project_id == pid))}
        assert set(rules) == {"eval-refusal-agreement-dropped", "eval-refusal-stopped"}
        assert rules["eval-refusal-stopped"].threshold == 0.5
    rng = random.Random(5)
    fired_at = []
    for k in range(7):
        with session_maker() as s:
            _window(s, pid, k, rng, degraded=k == 6)
        start = T0 + timedelta(hours=k)
        process_window(pid, start, factory=session_maker, only=["evaluators"])
        with session_maker() as s:
            row = s.scalar(select(MetricValue).where(MetricValue.project_id == pid, MetricValue.window_start == start,
                                                     MetricValue.metric == "eval.refusal.agreement",
                                                     MetricValue.segment == "all"))
            assert row is not None and row.status == "ok"
            assert row.n == PER_WINDOW and row.details["auc_low"] <= row.value <= row.details["auc_high"]
            if k < 6:
                assert row.value > 0.8 and row.flagged is False, row.details
            # The window's subscribers evaluated the rules as it finished (inline here); evaluating again is a no-op.
            evaluate_window(s, pid, start)
            s.commit()
            firing = s.scalars(select(Alert.rule_name).where(Alert.project_id == pid, Alert.status == "firing")).all()
            fired_at.append((k, sorted(firing)))
    # Silent while agreement held; the first degraded window pages, and only the agreement rule does.
    assert fired_at == [(k, []) for k in range(6)] + [(6, ["eval-refusal-agreement-dropped"])]
    with session_maker() as s:
        alert = s.scalar(select(Alert).where(Alert.project_id == pid, Alert.status == "firing"))
        assert alert is not None and alert.rule_name == "eval-refusal-agreement-dropped"
        row = s.scalar(select(MetricValue).where(MetricValue.project_id == pid,
                                                 MetricValue.metric == "eval.refusal.agreement",
                                                 MetricValue.window_start == T0 + timedelta(hours=6),
                                                 MetricValue.segment == "all"))
        assert row is not None and row.flagged is True and row.p_value < 0.01
        assert row.details["baseline_n"] >= 5 * PER_WINDOW - 10
