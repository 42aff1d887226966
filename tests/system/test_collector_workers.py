"""A collector with several worker processes (`driftloop serve --workers 2`): /metrics reports the sum over
all of them, whichever worker answers the scrape (a regression: each answered with its own counts only)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from monitor.projects.service import create_key
from tests.support.collector import CollectorProcess
from tests.support.factories import event_dict, unique_slug

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _answered(metrics_text: str, status: str) -> float:
    prefix = f'driftloop_http_requests_total{{method="POST",route="/v1/events",status="{status}"}}'
    return sum(float(line.split()[-1]) for line in metrics_text.splitlines() if line.startswith(prefix))


def test_metrics_sum_over_worker_processes(pg_url: str, pg_engine: Engine, tmp_path: Path) -> None:
    with Session(pg_engine) as s:
        key = create_key(s, unique_slug("workers"))
        s.commit()
    collector = CollectorProcess(pg_url, tmp_path / "collector.log", workers=2)
    collector.start()
    try:
        sent = 40
        for _ in range(sent):  # a new connection each time, so the kernel hands them to both workers
            r = httpx.post(f"{collector.url}/v1/events", json={"events": [event_dict()]},
                           headers={"Authorization": f"Bearer {key.key}"}, timeout=30)
            assert r.status_code == 200
        scrapes = [httpx.get(f"{collector.url}/metrics", timeout=10).text for _ in range(8)]
    finally:
        collector.stop()
    assert [_answered(text, "200") for text in scrapes] == [sent] * len(scrapes)
    assert all("driftloop_http_request_seconds_bucket" in text for text in scrapes)
