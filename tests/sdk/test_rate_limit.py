"""The SDK against a real, tightly rate-limited collector process (limits in Redis): it honours Retry-After and
every event ends up stored exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from monitor.models import Event
from monitor.projects.service import create_key, get_project
from monitor.sdk import Client
from tests.support.collector import CollectorProcess
from tests.support.factories import unique_slug
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


def _stored(engine: Engine, slug: str) -> tuple[int, int]:
    with Session(engine) as s:
        pid = get_project(s, slug).id
        total = s.scalar(select(func.count()).select_from(Event).where(Event.project_id == pid))
        distinct = s.scalar(select(func.count(func.distinct(Event.client_event_id))).where(Event.project_id == pid))
        return int(total or 0), int(distinct or 0)


def test_sdk_against_a_rate_limited_collector_loses_nothing(
    pg_url: str, pg_engine: Engine, redis_url: str, celery_key_prefix: str, tmp_path: Path
) -> None:
    with Session(pg_engine) as s:
        key = create_key(s, unique_slug("rl"))
        s.commit()
    collector = CollectorProcess(pg_url, tmp_path / "collector.log", extra_env={
        "DRIFTLOOP_RATE_LIMIT_BACKEND": "redis", "DRIFTLOOP_REDIS_URL": redis_url,
        "DRIFTLOOP_CELERY_KEY_PREFIX": celery_key_prefix,
        "DRIFTLOOP_RATE_LIMIT_PER_SECOND": "4", "DRIFTLOOP_RATE_LIMIT_BURST": "2",
    })
    collector.start()
    client = Client(collector.url, key.key, batch_size=20, flush_interval=0.02, spool_dir=tmp_path / "spool",
                    timeout=5)
    try:
        # No flush(): a pending flush makes the SDK spool a refused batch at once instead of waiting; here the
        # worker retries on its own schedule, as in an app that keeps running.
        ids = [client.log(f"question {i}", f"answer {i}", model="m") for i in range(200)]
        wait_for(lambda: _stored(pg_engine, key.project_slug)[0] >= 200, 90, "every event to be stored")
    finally:
        client.close(timeout=10)
        collector.stop()
    assert _stored(pg_engine, key.project_slug) == (200, 200)
    assert len(set(ids)) == 200
    stats = client.stats
    # The collector did refuse (10 requests at 4/s with a burst of 2), and the SDK waited as told.
    waits = [delay for reason, delay in client._worker.retry_schedule if reason == "retry_after"]  # type: ignore[union-attr]
    assert waits, f"no 429 was seen: {stats}"
    assert all(delay == 1.0 for delay in waits)  # Retry-After: 1 (whole seconds, rounded up)
    assert stats.spooled == 0  # waiting as told was enough: nothing had to go to disk
    assert stats.dropped_queue_full == stats.dropped_rejected == stats.dropped_unreachable == 0
    assert stats.dropped_invalid == stats.dropped_unauthorized == 0
