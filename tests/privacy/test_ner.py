"""The optional `person` detector (monitor/privacy/ner.py): off by default and outside `all=`; its spans are masked
like any other and yield to the pattern detectors; a missing spaCy or pipeline fails closed at ingestion (503,
nothing stored). No spaCy English pipeline installs from the registries here, so the real model's precision and
recall are measured where one is installed, by `python bench/pii.py --ner` (BENCHMARKS.md), not in this suite."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.models import Event
from monitor.privacy import ingest as privacy_ingest
from monitor.privacy import ner
from monitor.privacy.redact import Policy, Redactor, default_actions, parse_actions
from monitor.projects.service import get_project
from tests.support.factories import make_key


@dataclass
class _Ent:
    start_char: int
    end_char: int
    label_: str


@dataclass
class _Doc:
    ents: list[_Ent]


class Names:
    """A stand-in pipeline that tags the given names as PERSON (and "Paris" as GPE), to test the wiring."""

    def __init__(self, *names: str) -> None:
        self.names = names
        self.calls = 0

    def __call__(self, text: str) -> _Doc:
        self.calls += 1
        ents = [_Ent(text.index(n), text.index(n) + len(n), "PERSON") for n in self.names if n in text]
        if "Paris" in text:
            ents.append(_Ent(text.index("Paris"), text.index("Paris") + 5, "GPE"))
        return _Doc(ents)


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[Names]:
    names = Names("Ada Lovelace", "ada.lovelace")
    monkeypatch.setattr(ner, "_loaded", {"fake-pipeline": names})
    monkeypatch.setattr(ner, "_model", "fake-pipeline")
    yield names


def test_person_is_off_by_default_and_only_on_by_name() -> None:
    assert default_actions()["person"] == "off"
    assert parse_actions("all=mask")["person"] == "off" and parse_actions("all=mask")["ip"] == "mask"
    assert parse_actions("all=mask,person=hash")["person"] == "hash"


def test_person_spans_are_masked_and_yield_to_pattern_detectors(fake_model: Names) -> None:
    redactor = Redactor(Policy(parse_actions("person=mask")))
    out = redactor.redact_text("Ada Lovelace (ada.lovelace@example.org) lives in Paris.", "prompt")
    # the e-mail detector wins the overlapping span; GPE is not a person
    assert out == "<PERSON> (<EMAIL>) lives in Paris."
    assert redactor.counts == {"person": 1, "email": 1}
    assert Redactor(Policy()).redact_text("Ada Lovelace", "prompt") == "Ada Lovelace"  # off: the model never runs
    assert fake_model.calls == 1


def test_a_missing_pipeline_fails_closed(app_for: Any, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ner, "_loaded", {})
    # Where spaCy is installed its import alone can outlast the one-second floor on a loaded machine (a timeout:
    # also a 503, but not the failure under test).
    monkeypatch.setattr(privacy_ingest, "MIN_BUDGET_SECONDS", 120.0)
    key = make_key(session)
    session.commit()
    client = app_for(pii_actions="person=mask", pii_ner_model="no_such_pipeline_for_driftloop_tests")
    body = {"events": [{"event_id": "n1", "prompt": "Ada Lovelace wrote the first program"}]}
    r = client.post("/v1/events", json=body, headers={"Authorization": f"Bearer {key.key}"})
    assert r.status_code == 503 and "NerUnavailable" in r.text and "Lovelace" not in r.text
    session.expire_all()
    pid = get_project(session, key.project_slug).id
    assert session.scalars(select(Event).where(Event.project_id == pid)).all() == []
    # withhold: stored, without the text
    client = app_for(pii_actions="person=mask", pii_ner_model="no_such_pipeline_for_driftloop_tests",
                        pii_on_error="withhold")
    assert client.post("/v1/events", json=body, headers={"Authorization": f"Bearer {key.key}"}).status_code == 200
    session.expire_all()
    assert session.scalars(select(Event.prompt).where(Event.project_id == pid)).all() == [None]
