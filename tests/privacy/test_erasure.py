"""Erasure: after `erase` (service, admin API and CLI share it), no row, vector, score, drift example or training-set
line still holds the session's data; the model versions trained on it are listed; one audit entry records it
without the content; a dry run changes nothing. On Postgres and SQLite."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.evaluators.models import EvalScore
from monitor.ingest.service import ingest_events, ingest_feedback
from monitor.models import Event, Feedback
from monitor.pipeline.models import EventScore, EventVector, MetricValue
from monitor.privacy.erasure import Selector
from monitor.projects.service import CreatedKey, get_project
from monitor.schemas import EventIn, FeedbackIn
from retrain.models import AuditEntry, ModelVersion
from retrain.registry.erasure import erase
from tests.support.factories import make_key

T0 = datetime(2026, 11, 1, tzinfo=UTC)
SECRET = "ERASE-ME"


def _seed(session: Session, key: CreatedKey, tmp_path: Path) -> int:
    pid = get_project(session, key.project_slug).id
    events = [EventIn(event_id=f"gone-{i}", session_id="user-42", timestamp=T0 + timedelta(seconds=i),
                      prompt=f"{SECRET} question {i}", response=f"{SECRET} answer {i}",
                      metadata={"user": "u42"}) for i in range(3)]
    events += [EventIn(event_id=f"kept-{i}", session_id="user-7", timestamp=T0 + timedelta(seconds=i),
                       prompt=f"kept question {i}", response="kept answer", metadata={"user": "u7"}) for i in range(2)]
    ingest_events(session, pid, events)
    ingest_feedback(session, pid, [FeedbackIn(feedback_id="fb-gone", event_id="gone-0", score=0,
                                              corrected_response=f"{SECRET} fix"),
                                   FeedbackIn(feedback_id="fb-kept", event_id="kept-0", score=1)])
    for e in session.scalars(select(Event).where(Event.project_id == pid)):
        session.add(EventVector(event_id=e.id, field="prompt", model_key="m", dim=2, vector=b"\x00" * 4))
        session.add(EventScore(event_id=e.id, field="response", scorer="tox", score=0.1))
        # an evaluator's explanation may quote the response
        session.add(EvalScore(event_id=e.id, evaluator="refusal", version="v1", project_id=pid, value=0.0,
                              explanation=f"no refusal in {e.response!r}"))
    session.add(MetricValue(project_id=pid, metric="drift.prompt", segment="all", window_start=T0,
                            window_end=T0 + timedelta(hours=1), status="ok", n=5,
                            details={"clusters": [{"examples": [f"{SECRET} question 1", "kept question 0"]}]}))
    snapshot = tmp_path / "snap.jsonl"
    snapshot.write_text("".join(json.dumps({"split": "train", "event_id": i, "prompt": p, "response": "r"}) + "\n"
                                for i, p in (("gone-0", f"{SECRET} question 0"), ("kept-1", "kept question 1"))))
    for name, path in (("v1", snapshot), ("v2", None)):
        session.add(ModelVersion(project_id=pid, name=name, base_model="base", status="candidate",
                                 created_by="test", dataset_path=str(path) if path else None,
                                 eval_results={"samples": [{"prompt": f"{SECRET} question 0", "reference": "r",
                                                            "answer": "a"}]}))
    session.commit()
    return pid


def _count(session: Session, model: Any, pid: int) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).select_from(model).where(model.project_id == pid)) or 0)


def test_erase_a_session_everywhere(session_maker: sessionmaker[Session], session: Session, tmp_path: Path) -> None:
    key = make_key(session)
    pid = _seed(session, key, tmp_path)
    sel = Selector(session_id="user-42")

    dry = erase(session_maker, pid, sel, actor="dpo", dry_run=True)
    assert (dry.events.events, dry.events.feedback, dry.events.vectors, dry.events.scores) == (3, 1, 3, 6)
    assert dry.versions == ["v1"] and dry.snapshot_lines == 1 and dry.audit_id is None
    assert _count(session, Event, pid) == 5 and SECRET in (tmp_path / "snap.jsonl").read_text()

    done = erase(session_maker, pid, sel, actor="dpo", reason="GDPR art. 17 request", batch_size=2)
    assert done.events.events == 3 and done.events.batches == 2 and done.versions == ["v1"]
    assert done.events.metric_examples == 1
    assert _count(session, Event, pid) == 2 and _count(session, Feedback, pid) == 1
    # This project's vectors only (other tests share the database).
    assert session.scalar(select(func.count()).select_from(EventVector).join(Event, Event.id == EventVector.event_id)
                          .where(Event.project_id == pid)) == 2
    # Nothing of the session is left anywhere: rows, JSON details, the snapshot file, the audit entry.
    assert _count(session, EvalScore, pid) == 2
    texts = [repr(row) for model in (Event, Feedback, MetricValue, AuditEntry, ModelVersion, EvalScore)
             for row in session.execute(select(model.__table__)).all()]
    assert not [t for t in texts if SECRET in t]
    assert SECRET not in (tmp_path / "snap.jsonl").read_text() and "kept-1" in (tmp_path / "snap.jsonl").read_text()
    entry = session.scalars(select(AuditEntry).where(AuditEntry.project_id == pid)).one()
    assert entry.action == "erase" and entry.details["selector"] == {"session_id": "user-42"}
    assert entry.details["model_versions"] == ["v1"]
    v1 = session.scalars(select(ModelVersion).where(ModelVersion.project_id == pid, ModelVersion.name == "v1")).one()
    assert v1.dataset_stats["erased_examples"] == 1
    again = erase(session_maker, pid, sel, actor="dpo")  # safe to run twice
    assert again.events.events == 0 and again.versions == []


def test_erase_by_metadata_and_by_event_id(session_maker: sessionmaker[Session], session: Session,
                                           tmp_path: Path) -> None:
    key = make_key(session)
    pid = _seed(session, key, tmp_path)
    assert erase(session_maker, pid, Selector(metadata=("user", "u7")), actor="dpo").events.events == 2
    assert erase(session_maker, pid, Selector(event_ids=("gone-1", "nope")), actor="dpo").events.events == 1
    session.expire_all()
    assert sorted(session.scalars(select(Event.client_event_id).where(Event.project_id == pid))) == ["gone-0", "gone-2"]
    with pytest.raises(ValueError, match="exactly one"):
        Selector(session_id="a", event_ids=("b",))


def test_admin_api(client: TestClient, session: Session, tmp_path: Path) -> None:
    key = make_key(session)
    pid = _seed(session, key, tmp_path)
    ingest_only = make_key(session, key.project_slug, "app", scopes="ingest")
    session.commit()
    body = {"actor": "dpo", "session_id": "user-42", "dry_run": True}
    assert client.post("/v1/erasure", json=body, headers={"Authorization": f"Bearer {ingest_only.key}"}
                       ).status_code == 403
    r = client.post("/v1/erasure", json=body, headers={"Authorization": f"Bearer {key.key}"})
    assert r.status_code == 200 and r.json()["events"] == 3 and r.json()["model_versions"] == ["v1"]
    assert _count(session, Event, pid) == 5
    r = client.post("/v1/erasure", json={**body, "dry_run": False}, headers={"Authorization": f"Bearer {key.key}"})
    assert r.status_code == 200 and r.json()["events"] == 3 and r.json()["audit_id"] is not None
    assert _count(session, Event, pid) == 2
    bad = client.post("/v1/erasure", json={"actor": "dpo"}, headers={"Authorization": f"Bearer {key.key}"})
    assert bad.status_code == 422


def test_cli_dry_run_then_erase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from monitor import migrations
    from monitor.cli import app
    from monitor.db import reset_engines
    from monitor.settings import reset_settings_cache

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DRIFTLOOP_DATABASE_URL", url)
    monkeypatch.setenv("DRIFTLOOP_DATA_DIR", str(tmp_path / "data"))
    reset_settings_cache()
    reset_engines()
    try:
        migrations.upgrade(url)
        from sqlalchemy import create_engine

        engine = create_engine(url)
        with Session(engine) as s:
            key = make_key(s)
            _seed(s, key, tmp_path)

        def run(*args: str) -> str:
            result = CliRunner().invoke(app, list(args))
            assert result.exit_code == 0, result.output
            return result.output

        dry = json.loads(run("erase", "-p", key.project_slug, "--session", "user-42", "--dry-run", "--json"))
        assert dry["events"] == 3 and dry["model_versions"] == ["v1"] and dry["audit_id"] is None
        out = run("erase", "-p", key.project_slug, "--session", "user-42", "--reason", "request 17")
        assert "erased: 3 events" in out and "v1" in out
        with Session(engine) as s:
            assert s.scalar(select(func.count()).select_from(Event)) == 2
            assert s.scalars(select(AuditEntry.reason)).all() == ["request 17"]
        bad = CliRunner().invoke(app, ["erase", "-p", key.project_slug, "--session", "a", "--event", "b"])
        assert bad.exit_code != 0 and "exactly one" in bad.output
        engine.dispose()
    finally:
        reset_settings_cache()
        reset_engines()
