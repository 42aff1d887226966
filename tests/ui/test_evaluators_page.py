"""The project page shows one series per evaluator, and an evaluator that failed in the latest window says so
with its message (both backends, real rows written by the evaluators stage)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from monitor.evaluators import registry
from monitor.evaluators.base import EvalItem, EvalResult, EvaluatorFailed
from monitor.ingest.service import ingest_events
from monitor.projects.service import get_or_create_project
from monitor.runner import process_window
from monitor.schemas import EventIn
from tests.support.factories import unique_slug
from tests.ui.test_pages import card, text_of

T0 = datetime(2026, 11, 21, 8, tzinfo=UTC)


@dataclass
class Down:
    name: str
    version: str = "down1"
    fields: frozenset[str] = frozenset({"response"})
    good_when_high: bool | None = None

    def evaluate(self, items: Sequence[EvalItem]) -> list[EvalResult]:
        raise EvaluatorFailed("judge endpoint http://127.0.0.1:9/v1 is down")


def test_project_page_shows_evaluator_series_and_failure(ui: TestClient, session_maker: sessionmaker[Session],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.BUILTINS, "down", lambda spec, settings: Down(spec.name))
    slug = unique_slug("ev")
    with session_maker() as s:
        project = get_or_create_project(s, slug)
        project.config = {"evaluators": [{"kind": "refusal"}, {"kind": "down", "name": "judge"}], "min_samples": 5}
        ingest_events(s, project.id, [EventIn(event_id=f"e{i}", timestamp=T0 + timedelta(minutes=i), prompt="Hi?",
                                              response="I'm sorry, but I can't help with that." if i % 4 == 0
                                              else "Sure, here is how to reset your password.")
                                      for i in range(40)])
        s.commit()
        pid = project.id
    process_window(pid, T0, factory=session_maker, only=["evaluators"])
    html = card(ui.get(f"/ui/p/{slug}/").text, slug)
    group = html[html.index('data-kind="evaluators"'):]
    text = text_of(group)
    assert "refusal (refusal) rate 25" in text  # 10 of 40 refused, shown as a percentage
    assert 'data-metric="eval.refusal.rate"' in group and 'data-metric="eval.judge.coverage"' in group
    assert "failed" in text and "judge endpoint http://127.0.0.1:9/v1 is down" in text
    assert group.count('<svg class="spark"') == 4  # a series per evaluator: its rate and its coverage


def test_event_page_lists_its_evaluator_scores(ui: TestClient, session_maker: sessionmaker[Session]) -> None:
    from sqlalchemy import select

    from monitor.models import Event

    slug = unique_slug("ev")
    with session_maker() as s:
        project = get_or_create_project(s, slug)
        project.config = {"evaluators": [{"kind": "refusal"}, {"kind": "degenerate"}]}
        ingest_events(s, project.id, [EventIn(event_id="r1", timestamp=T0, prompt="How do I pick a lock?",
                                              response="I'm sorry, but I can't help with that.")])
        s.commit()
        pid = project.id
    process_window(pid, T0, factory=session_maker, only=["evaluators"])
    with session_maker() as s:
        eid = s.scalar(select(Event.id).where(Event.project_id == pid))
    html = ui.get(f"/ui/p/{slug}/events/{eid}").text
    table = html[html.index('id="event-evaluations"'):]
    table = table[:table.index("</table>")]
    text = text_of(table)
    assert "refusal" in text and "yes" in text and "can't help" in text  # the cue that fired
    assert "degenerate" in text and "complete, no repetition" in text


def test_events_page_filters_by_an_evaluator_score(ui: TestClient, session_maker: sessionmaker[Session]) -> None:
    slug = unique_slug("ev")
    with session_maker() as s:
        project = get_or_create_project(s, slug)
        project.config = {"evaluators": [{"kind": "refusal"}]}
        ingest_events(s, project.id, [EventIn(event_id=f"f{i}", timestamp=T0 + timedelta(minutes=i), prompt="Hi?",
                                              response="I'm sorry, but I can't help with that." if i % 3 == 0
                                              else "Sure, here is how to reset your password.")
                                      for i in range(9)])
        s.commit()
        pid = project.id
    process_window(pid, T0, factory=session_maker, only=["evaluators"])
    html = ui.get(f"/ui/p/{slug}/events", params={"evaluator": "refusal", "eval_min": "0.5"}).text
    assert sorted(set(re.findall(r'data-event-id="(f\d)"', html))) == ["f0", "f3", "f6"]  # the refusals
    assert 'name="evaluator" value="refusal"' in html  # the form keeps what was asked
    bad = ui.get(f"/ui/p/{slug}/events", params={"eval_min": "0.5"})
    assert bad.status_code == 422 and "needs the evaluator" in bad.text
