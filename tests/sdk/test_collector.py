"""The SDK against a real collector process on Postgres: the collector is stopped while the app logs,
restarted on the same port, and every event ends up stored exactly once (disk spool + idempotent ingest)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from monitor.models import Event, Feedback
from monitor.projects.service import create_key, get_project
from monitor.sdk import Client, RetryPolicy
from tests.support.collector import CollectorProcess
from tests.support.factories import unique_slug
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _count(engine: Engine, slug: str, model: type[Event] | type[Feedback] = Event) -> tuple[int, int]:
    with Session(engine) as s:
        pid = get_project(s, slug).id
        id_col = model.client_event_id if model is Event else model.client_feedback_id  # type: ignore[union-attr]
        total = s.scalar(select(func.count()).select_from(model).where(model.project_id == pid))
        distinct = s.scalar(select(func.count(func.distinct(id_col))).where(model.project_id == pid))
        return int(total or 0), int(distinct or 0)


def test_collector_outage_loses_nothing_and_duplicates_nothing(pg_url: str, pg_engine: Engine, tmp_path: Path) -> None:
    with Session(pg_engine) as s:
        key = create_key(s, unique_slug("sdk"))
        s.commit()
    collector = CollectorProcess(pg_url, tmp_path / "collector.log")
    collector.start()
    client = Client(collector.url, key.key, batch_size=50, flush_interval=0.05, spool_dir=tmp_path / "spool",
                    timeout=2, retry=RetryPolicy(max_attempts=2, backoff_base=0.05, backoff_cap=0.2))
    try:
        ids = [client.log(f"question {i}", f"answer {i}", model="m", latency_ms=10.0 + i) for i in range(500)]
        assert client.flush(timeout=30)
        assert _count(pg_engine, key.project_slug) == (500, 500)

        collector.stop()
        logged = threading.Event()

        def app_thread() -> None:  # the app keeps logging while the collector is down
            for i in range(500, 2000):
                ids.append(client.log(f"question {i}", f"answer {i}", model="m", latency_ms=10.0))
            for i in range(0, 2000, 10):
                client.feedback(ids[i], score=1.0)
            logged.set()

        t = threading.Thread(target=app_thread)
        t.start()
        t.join(timeout=60)
        assert logged.is_set(), "log() blocked while the collector was down"
        assert client.flush(timeout=30)  # everything undeliverable is now on disk
        assert client.stats.spooled > 0
        assert _count(pg_engine, key.project_slug)[0] == 500

        collector.start()  # same port
        assert client.flush(timeout=60)
        # Replay happens on the worker's next successful contact; a fresh log() prompts it.
        client.log("after restart", "ok", model="m")
        assert client.flush(timeout=60)
        wait_for(lambda: _count(pg_engine, key.project_slug)[0] >= 2001, 120, "the spool to drain")
        wait_for(lambda: _count(pg_engine, key.project_slug, Feedback)[0] >= 200, 60, "spooled feedback")
        assert client.stats.replayed > 0
    finally:
        client.close(timeout=10)
        collector.stop()
    assert _count(pg_engine, key.project_slug) == (2001, 2001)
    assert _count(pg_engine, key.project_slug, Feedback) == (200, 200)
    assert client.stats.dropped_queue_full == 0 and client.stats.dropped_invalid == 0
