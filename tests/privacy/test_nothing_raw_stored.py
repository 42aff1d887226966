"""End to end: PII-rich events, feedback and OTLP spans sent through the real SDK, OTLP/HTTP and the feedback API
to a real collector process, on Postgres and SQLite; then every window stage (embeddings, scores, drift,
evaluators) and a training-set snapshot are computed from what was stored; then every table is dumped (`pg_dump` /
sqlite `iterdump`) and every file written (data directory, SDK spool, collector log, the SQLite file) read, and
none of the raw values is anywhere."""

from __future__ import annotations

import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor import migrations
from monitor.db import make_engine, reset_engines, utcnow
from monitor.evaluators.models import EvalScore
from monitor.models import Event, Feedback
from monitor.pipeline.models import EventVector
from monitor.projects.service import create_key, get_project
from monitor.runner import run_pending
from monitor.sdk import Client
from monitor.settings import reset_settings_cache
from tests.ingest.otlp.build import make_request, make_span
from tests.support import services
from tests.support.collector import CollectorProcess
from tests.support.factories import unique_slug
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow]

EMAIL = "ada.lovelace@example.org"
PHONE = "+44 20 7946 0958"
CARD = "4111 1111 1111 1111"
IBAN = "DE89 3704 0044 0532 0130 00"
API_KEY = "sk-proj-Zq8vX2mN7pL4kR9tY3wB6cF1"
PASSWORD = "hunter2-Sekret"
DB_URL = f"postgres://admin:{PASSWORD}@db.example.com:5432/app"
RAW = [EMAIL, PHONE, CARD, IBAN, API_KEY, PASSWORD, "ada.lovelace", "4111111111111111", "DE89370400440532013000",
       "7946 0958", "Zq8vX2mN7pL4kR9tY3wB6cF1"]
PII_TEXT = f"I am {EMAIL}, call {PHONE}; card {CARD}, IBAN {IBAN}. Key {API_KEY}, DB {DB_URL}."


@pytest.fixture(params=["postgres", "sqlite"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgres":
        admin = request.getfixturevalue("_servers")[0]
        name = f"driftloop_pii_{services.checkout_tag()}_{uuid.uuid4().hex[:6]}"
        url = services.recreate_database(admin, name)
        migrations.upgrade(url)
        yield url
        services.drop_database(admin, name)
    else:
        url = f"sqlite:///{tmp_path / 'pii.db'}"
        migrations.upgrade(url)
        yield url


def _dump(url: str) -> str:
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            return "\n".join(conn.iterdump())
        finally:
            conn.close()
    plain = url.replace("postgresql+psycopg", "postgresql")
    return subprocess.run(["pg_dump", "--no-owner", plain], check=True, capture_output=True, text=True).stdout


def _files(root: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in root.rglob("*") if p.is_file())


def _derive_everything(database: str, pid: int, data_dir: Path) -> Path:
    """What is computed later from the stored rows, in this process: every window stage (embeddings, toxicity and
    sentiment scores, drift, evaluators), then a training-set snapshot in the data directory."""
    from retrain.dataset.builder import build_dataset
    from retrain.dataset.store import feedback_rows, store_snapshot

    engine = make_engine(database)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    try:
        report = run_pending(utcnow() + timedelta(hours=6), factory=factory, project_ids=[pid])
        assert report.windows >= 1
        with factory() as s:
            assert (s.scalar(select(func.count()).select_from(EventVector)) or 0) > 0  # embeddings were computed
            assert (s.scalar(select(func.count()).select_from(EvalScore).where(EvalScore.project_id == pid)) or 0) > 0
            rows = feedback_rows(s, pid)
        snapshot = build_dataset(rows)
        assert snapshot.stats["rows"] == len(rows) > 0
        return store_snapshot(snapshot, data_dir, pid)
    finally:
        engine.dispose()


def test_no_raw_pii_in_any_table_or_file(
    database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(database)
    slug = unique_slug("pii")
    with Session(engine) as s:
        key = create_key(s, slug, "app")  # the `ingest` scope, as an app has
        project = get_project(s, slug)
        # evaluators read the stored texts too (their explanations may quote them)
        project.config = {**(project.config or {}), "evaluators": [{"kind": "degenerate"}, {"kind": "pii_leak"},
                                                                   {"kind": "refusal"}]}
        s.commit()
        pid = project.id
    data_dir = tmp_path / "data"
    collector = CollectorProcess(database, tmp_path / "collector.log",
                                 extra_env={"DRIFTLOOP_DATA_DIR": str(data_dir)})
    collector.start()
    try:
        sdk = Client(collector.url, key.key, spool_dir=tmp_path / "spool", flush_interval=0.05)
        ids = [sdk.log(f"{PII_TEXT} #{i}", f"Noted {EMAIL} and {PHONE}", session_id=f"s{i}",
                       metadata={"user": EMAIL, "billing": {"card": CARD}, "notes": [IBAN]},
                       error=None if i else f"failed to reach {DB_URL}") for i in range(5)]
        sdk.feedback(ids[0], score=0, comment=f"wrong, write to {EMAIL}", corrected_response=f"Call {PHONE}",
                     metadata={"by": EMAIL})
        sdk.flush(timeout=30)
        sdk.close(timeout=5)
        assert sdk.stats.sent == 6
        span = make_span("chat", {
            "gen_ai.system": "openai", "gen_ai.request.model": "gpt-x",
            "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": PII_TEXT,
            "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": f"Mail {EMAIL}",
            "session.id": "otlp-1", "app.customer_email": EMAIL,
        })
        r = httpx.post(f"{collector.url}/v1/traces", content=make_request(span).SerializeToString(),
                       headers={"Authorization": f"Bearer {key.key}", "Content-Type": "application/x-protobuf"})
        assert r.status_code == 200, r.text
        r = httpx.post(f"{collector.url}/v1/feedback", headers={"Authorization": f"Bearer {key.key}"},
                       json={"feedback": [{"feedback_id": "f-api", "event_id": ids[1], "label": "bad",
                                           "comment": f"my card is {CARD}", "corrected_response": IBAN}]})
        assert r.status_code == 200, r.text

        def stored() -> bool:
            with Session(engine) as s:
                events = s.scalar(select(func.count()).select_from(Event).where(Event.project_id == pid))
                feedback = s.scalar(select(func.count()).select_from(Feedback).where(Feedback.project_id == pid))
            return (events, feedback) == (6, 2)

        wait_for(stored, 30, "6 events and 2 feedback items stored")
        metrics = httpx.get(f"{collector.url}/metrics").text
    finally:
        collector.stop()
        engine.dispose()
    monkeypatch.setenv("DRIFTLOOP_DATABASE_URL", database)
    monkeypatch.setenv("DRIFTLOOP_DATA_DIR", str(data_dir))
    reset_settings_cache()
    reset_engines()
    try:
        snapshot = _derive_everything(database, pid, data_dir)
    finally:
        reset_settings_cache()
        reset_engines()

    with Session(create_engine(database)) as s:
        prompts = s.scalars(select(Event.prompt).where(Event.project_id == pid)).all()
    assert all(p and "<EMAIL>" in p and "<CARD>" in p and "<IBAN>" in p and "<API_KEY>" in p for p in prompts)
    dump = _dump(database)
    assert "<PHONE>" in dump and "<CREDENTIAL_URL>" in dump  # the dump holds the redacted rows
    # Every file under tmp_path: the data directory, the SDK's spool, the collector's log and (SQLite) the
    # database file itself, free pages included.
    assert "<PHONE>" in snapshot.read_text()  # the corrected answer, redacted, is a training example
    leaks = {raw for raw in RAW for text in (dump, _files(tmp_path)) if raw in text}
    assert leaks == set()
    assert 'driftloop_pii_redactions_total{detector="email"}' in metrics
