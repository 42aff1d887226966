"""Retention: old events (with embeddings and scores) and feedback go in small batches, new ones stay, metric
rows stay; a dry run only counts; ingestion keeps working while it runs; the CLI, the Celery task and the
in-process runner apply it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from monitor import migrations
from monitor.api.app import create_app
from monitor.cli import app as cli_app
from monitor.db import make_engine, reset_engines, utcnow
from monitor.ingest.service import ingest_events, ingest_feedback
from monitor.models import Event, Feedback
from monitor.pipeline.models import EventScore, EventVector, MetricValue
from monitor.projects.service import CreatedKey, get_project
from monitor.retention.service import apply_retention, expired_counts, retention_cutoff
from monitor.runner import run_pending
from monitor.schemas import EventIn, FeedbackIn
from monitor.settings import Settings, reset_settings_cache
from tests.support.factories import event_dict, make_key

NOW = utcnow()
OLD, FRESH = NOW - timedelta(days=40), NOW - timedelta(days=5)


def _seed(session: Session, slug: str | None = None, old: int = 7, fresh: int = 4) -> tuple[int, list[str], list[str]]:
    """A project with `old` events 40 days old and `fresh` 5 days old, each with a vector, a score and feedback."""
    key = make_key(session, slug)
    pid = get_project(session, key.project_slug).id
    old_ids = [f"old-{i}" for i in range(old)]
    fresh_ids = [f"fresh-{i}" for i in range(fresh)]
    events = [EventIn(event_id=i, timestamp=OLD, prompt="p", response="r") for i in old_ids]
    events += [EventIn(event_id=i, timestamp=FRESH, prompt="p", response="r") for i in fresh_ids]
    ingest_events(session, pid, events)
    feedback = [FeedbackIn(feedback_id=f"fb-{i}", event_id=i, timestamp=OLD if i.startswith("old") else FRESH,
                           score=1.0) for i in old_ids + fresh_ids]
    ingest_feedback(session, pid, feedback)
    for event_id in session.scalars(select(Event.id).where(Event.project_id == pid)):
        session.add(EventVector(event_id=event_id, field="prompt", model_key="m", dim=2, vector=b"\x00" * 4))
        session.add(EventScore(event_id=event_id, field="response", scorer="toxicity", score=0.1))
    session.add(MetricValue(project_id=pid, metric="ops.volume", segment="all", window_start=OLD,
                            window_end=OLD + timedelta(hours=1), status="ok", n=old, value=float(old)))
    session.commit()
    return pid, old_ids, fresh_ids


def _left(session: Session, pid: int) -> dict[str, Any]:
    session.expire_all()
    event_ids = select(Event.id).where(Event.project_id == pid)

    def count(model: Any, *where: Any) -> int:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    return {
        "events": sorted(session.scalars(select(Event.client_event_id).where(Event.project_id == pid))),
        "feedback": count(Feedback, Feedback.project_id == pid),
        "vectors": count(EventVector, EventVector.event_id.in_(event_ids)),
        "scores": count(EventScore, EventScore.event_id.in_(event_ids)),
        "metrics": count(MetricValue, MetricValue.project_id == pid),
    }


def test_old_rows_go_in_batches_and_new_rows_and_metrics_stay(
    session: Session, session_maker: sessionmaker[Session]
) -> None:
    pid, old_ids, fresh_ids = _seed(session)
    other_pid, _, _ = _seed(session)
    report = apply_retention(session_maker, days=30, batch_size=3, now=NOW, project_ids=[pid])
    counts = report.projects[_slug(session, pid)]
    assert list(report.projects) == [_slug(session, pid)]
    assert (counts.events, counts.vectors, counts.scores, counts.feedback) == (7, 7, 7, 7)
    assert report.batches == 3  # 3 + 3 + 1 rows of each table
    assert _left(session, pid) == {"events": sorted(fresh_ids), "feedback": 4, "vectors": 4, "scores": 4,
                                   "metrics": 1}
    assert len(_left(session, other_pid)["events"]) == len(old_ids) + len(fresh_ids)  # not in project_ids
    again = apply_retention(session_maker, days=30, batch_size=3, now=NOW, project_ids=[pid])
    assert again.totals.total == 0 and again.batches == 0  # safe to run twice


def test_dry_run_counts_and_deletes_nothing(session: Session, session_maker: sessionmaker[Session]) -> None:
    pid, _, _ = _seed(session, old=5, fresh=2)
    report = apply_retention(session_maker, days=30, now=NOW, project_ids=[pid], dry_run=True)
    (counts,) = report.projects.values()
    assert (counts.events, counts.vectors, counts.scores, counts.feedback) == (5, 5, 5, 5)
    assert len(_left(session, pid)["events"]) == 7
    assert report.as_dict()["totals"]["events"] == 5 and report.dry_run


def test_cutoff_is_exclusive_and_days_must_be_positive(session: Session) -> None:
    pid, _, _ = _seed(session, old=3, fresh=1)
    # Exactly 40 days before NOW is the old events' timestamp: `ts < cutoff` keeps them; a microsecond later, not.
    assert expired_counts(session, pid, OLD).events == 0
    assert expired_counts(session, pid, OLD + timedelta(microseconds=1)).events == 3
    with pytest.raises(ValueError, match="at least 1"):
        retention_cutoff(0)


def test_in_process_runner_applies_retention_after_a_run(
    session: Session, session_maker: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    pid, _, fresh_ids = _seed(session)
    monkeypatch.setenv("DRIFTLOOP_RETENTION_DAYS", "30")
    reset_settings_cache()
    try:
        run_pending(NOW, factory=session_maker, project_ids=[pid])
    finally:
        monkeypatch.delenv("DRIFTLOOP_RETENTION_DAYS")
        reset_settings_cache()
    assert _left(session, pid)["events"] == sorted(fresh_ids)


def test_without_retention_days_the_runner_deletes_nothing(
    session: Session, session_maker: sessionmaker[Session]
) -> None:
    pid, old_ids, fresh_ids = _seed(session)
    run_pending(NOW, factory=session_maker, project_ids=[pid])
    assert len(_left(session, pid)["events"]) == len(old_ids) + len(fresh_ids)


# ----- concurrently with ingestion (committed data, real engines) -----


@pytest.fixture
def engine(backend: str, request: pytest.FixtureRequest) -> Engine:
    return request.getfixturevalue("pg_engine" if backend == "postgres" else "sqlite_engine")  # type: ignore[no-any-return]


def test_ingestion_keeps_working_while_retention_deletes(engine: Engine, backend: str, tmp_path: Path) -> None:
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    with factory() as s:
        pid, _, _ = _seed(s, old=600, fresh=0)
        key: CreatedKey = make_key(s, _slug(s, pid), name="ingest")
        s.commit()
    app = create_app(Settings(database_url=str(engine.url), data_dir=tmp_path, rate_limit_per_second=0),
                     engine=engine)
    ingested = threading.Semaphore(0)
    retention_done = threading.Event()
    statuses: list[int] = []
    sent: list[str] = []

    def ingest() -> None:
        with TestClient(app) as client:
            while not retention_done.is_set() or len(statuses) < 5:
                batch = [event_dict() for _ in range(20)]  # today's events
                r = client.post("/v1/events", json={"events": batch}, headers={"Authorization": f"Bearer {key.key}"})
                statuses.append(r.status_code)
                sent.extend(e["event_id"] for e in batch)
                ingested.release()

    def interleaved() -> Session:
        # Every retention batch waits until one more ingest request has completed: the two really interleave.
        assert ingested.acquire(timeout=30), "ingestion stalled"
        return factory()

    worker = threading.Thread(target=ingest)
    worker.start()
    try:
        report = apply_retention(interleaved, days=30, batch_size=50, project_ids=[pid])  # type: ignore[arg-type]
    finally:
        retention_done.set()
        worker.join(timeout=60)
    assert not worker.is_alive()
    assert set(statuses) == {200}, statuses
    assert report.totals.events == 600 and report.batches == 12
    with factory() as s:
        stored = set(s.scalars(select(Event.client_event_id).where(Event.project_id == pid)))
    assert stored == set(sent)  # every new event kept, every old one gone
    assert len(sent) >= 20 * 12


def _slug(session: Session, pid: int) -> str:
    from monitor.models import Project

    return session.get_one(Project, pid).slug


# ----- the CLI and the Celery task -----


@pytest.fixture
def sqlite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'retention.db'}"
    migrations.upgrade(url)
    monkeypatch.setenv("DRIFTLOOP_DATABASE_URL", url)
    reset_settings_cache()
    reset_engines()
    yield url
    reset_settings_cache()
    reset_engines()


def test_cli_dry_run_then_run(sqlite_file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(sqlite_file)
    with Session(engine) as s:
        pid, _, fresh_ids = _seed(s, "shop", old=6, fresh=3)
    runner = CliRunner()
    off = runner.invoke(cli_app, ["retention", "run"])
    assert off.exit_code == 0 and "retention is off" in off.output
    dry = runner.invoke(cli_app, ["retention", "run", "--dry-run", "--days", "30"])
    assert dry.exit_code == 0, dry.output
    assert "would delete" in dry.output and _row(dry.output, "shop") == ["6", "6", "6", "6"]
    with Session(engine) as s:
        assert len(_left(s, pid)["events"]) == 9
    monkeypatch.setenv("DRIFTLOOP_RETENTION_DAYS", "30")
    reset_settings_cache()
    done = runner.invoke(cli_app, ["retention", "run", "--project", "shop"])
    assert done.exit_code == 0, done.output
    assert "deleted" in done.output and _row(done.output, "shop") == ["6", "6", "6", "6"]
    with Session(engine) as s:
        assert _left(s, pid)["events"] == sorted(fresh_ids)
    missing = runner.invoke(cli_app, ["retention", "run", "--project", "nope"])
    assert missing.exit_code == 1 and "no project named 'nope'" in missing.output
    engine.dispose()


def _row(output: str, label: str) -> list[str]:
    for line in output.splitlines():
        cells = [c.strip() for c in line.replace("│", "|").split("|") if c.strip()]
        if cells and cells[0] == label:
            return cells[1:]
    raise AssertionError(f"no row {label!r} in:\n{output}")


def test_celery_task_applies_the_policy_and_beat_schedules_it(
    sqlite_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.worker.app import _conf
    from monitor.worker.tasks import retention_task

    engine = make_engine(sqlite_file)
    with Session(engine) as s:
        pid, _, fresh_ids = _seed(s, old=4, fresh=2)
    assert retention_task() == {"retention": "off"}
    monkeypatch.setenv("DRIFTLOOP_RETENTION_DAYS", "30")
    reset_settings_cache()
    result = retention_task()  # the task body, run here (its Celery wiring is tested in test_celery_worker)
    assert result["totals"]["events"] == 4 and result["totals"]["feedback"] == 4
    with Session(engine) as s:
        assert _left(s, pid)["events"] == sorted(fresh_ids)
    schedule = _conf(Settings(retention_interval_seconds=600))["beat_schedule"]["driftloop-retention"]
    assert schedule == {"task": "driftloop.retention", "schedule": 600}
    engine.dispose()
