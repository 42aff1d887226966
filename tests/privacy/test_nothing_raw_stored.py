"""End to end: PII-rich events, feedback and OTLP spans sent through the real SDK, OTLP/HTTP and the feedback API
to a real collector process, on Postgres and SQLite; then every table is dumped (`pg_dump` / sqlite `iterdump`)
and every file of the data directory read, and none of the raw values is anywhere."""

from __future__ import annotations

import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from monitor import migrations
from monitor.models import Event, Feedback
from monitor.projects.service import create_key, get_project
from monitor.sdk import Client
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


def test_no_raw_pii_in_any_table_or_file(database: str, tmp_path: Path) -> None:
    engine = create_engine(database)
    slug = unique_slug("pii")
    with Session(engine) as s:
        key = create_key(s, slug, "app")  # the `ingest` scope, as an app has
        s.commit()
        pid = get_project(s, slug).id
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

    with Session(create_engine(database)) as s:
        prompts = s.scalars(select(Event.prompt).where(Event.project_id == pid)).all()
    assert all(p and "<EMAIL>" in p and "<CARD>" in p and "<IBAN>" in p and "<API_KEY>" in p for p in prompts)
    dump = _dump(database)
    assert "<PHONE>" in dump and "<CREDENTIAL_URL>" in dump  # the dump holds the redacted rows
    leaks = {raw for raw in RAW for text in (dump, _files(data_dir), _files(tmp_path / "spool")) if raw in text}
    assert leaks == set()
    assert 'driftloop_pii_redactions_total{detector="email"}' in metrics
