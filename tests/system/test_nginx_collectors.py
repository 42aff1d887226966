"""Several collector processes behind Debian's nginx (issue #22): the shipped template
(deploy/nginx/driftloop.conf.template) rendered and run by the test, three real `driftloop serve` processes on
one Postgres database, rate limits shared through Redis.

Shown here: requests spread over all three; one rate-limit budget per key across them; a batch whose answer was
lost is retried by nginx on another collector and stored once; nginx's body limits are the collectors' own; a
collector SIGKILLed costs no request and no event (SIGKILL mid-load: bench/faults/collector_kill.py)."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.orm import Session

from monitor import migrations
from monitor.api.body_cap import SMALL_BODY_BYTES
from monitor.db import make_engine
from monitor.projects.service import create_key
from monitor.settings import Settings
from tests.support import services
from tests.support.collector import CollectorProcess, start_all
from tests.support.factories import event_dict
from tests.support.lossy_upstream import LossyUpstream
from tests.support.nginx import INSTALL_HINT, Logged, Nginx, nginx_binary
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

BURST = 200  # requests per key, shared by the three collectors; refilled at 0.001/s, i.e. not during the test


@dataclass
class Farm:
    db_url: str
    collectors: list[CollectorProcess]
    nginx: Nginx

    def key(self, scopes: str = "ingest,read") -> str:
        engine = make_engine(self.db_url)
        try:
            with Session(engine) as s:
                created = create_key(s, f"nginx-{uuid.uuid4().hex[:8]}", scopes=scopes)
                s.commit()
                return created.key
        finally:
            engine.dispose()

    def stored(self, ids: list[str]) -> tuple[int, int]:
        """(rows, distinct client ids) among the events with these ids."""
        with psycopg.connect(self.db_url.replace("postgresql+psycopg", "postgresql")) as conn:
            row = conn.execute("SELECT count(*), count(DISTINCT client_event_id) FROM events "
                               "WHERE client_event_id = ANY(%s)", (ids,)).fetchone()
            assert row is not None
            return int(row[0]), int(row[1])


@pytest.fixture(scope="module")
def farm(_servers: tuple[str, str], tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[Farm]:
    if nginx_binary() is None:
        pytest.skip(INSTALL_HINT)
    admin, redis_url = _servers
    name = f"driftloop_nginx_{services.checkout_tag()}_{worker_id}"
    db_url = services.recreate_database(admin, name)
    migrations.upgrade(db_url)
    logs = tmp_path_factory.mktemp("collectors")
    env = {"DRIFTLOOP_REDIS_URL": redis_url, "DRIFTLOOP_RATE_LIMIT_BACKEND": "redis",
           "DRIFTLOOP_CELERY_KEY_PREFIX": f"driftloop-nginx-{uuid.uuid4().hex[:8]}:",
           "DRIFTLOOP_RATE_LIMIT_PER_SECOND": "0.001", "DRIFTLOOP_RATE_LIMIT_BURST": str(BURST)}
    collectors = [CollectorProcess(db_url, logs / f"collector-{i}.log", extra_env=env) for i in range(3)]
    nginx = Nginx([f"127.0.0.1:{c.port}" for c in collectors])
    try:
        start_all(collectors)
        nginx.start()
        yield Farm(db_url, collectors, nginx)
    finally:
        nginx.cleanup()
        for c in collectors:
            c.stop()
        services.drop_database(admin, name)


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _post_batches(url: str, key: str, batches: int, size: int = 20) -> tuple[list[str], list[dict[str, Any]]]:
    ids: list[str] = []
    answers: list[dict[str, Any]] = []
    with httpx.Client(base_url=url, headers=_auth(key), timeout=60) as client:
        for _ in range(batches):
            batch = [event_dict() for _ in range(size)]
            r = client.post("/v1/events", json={"events": batch})
            assert r.status_code == 200, r.text
            ids += [e["event_id"] for e in batch]
            answers.append(r.json())
    return ids, answers


def test_requests_spread_over_all_collectors_and_each_event_is_stored_once(farm: Farm) -> None:
    key = farm.key()
    ids, answers = _post_batches(farm.nginx.url, key, batches=12)
    assert sum(a["accepted"] for a in answers) == len(ids) and not any(a["duplicates"] for a in answers)
    assert farm.stored(ids) == (len(ids), len(ids))
    served = Counter(line.upstreams[-1] for line in farm.nginx.access_log() if line.request.startswith("POST"))
    assert set(served) == {f"127.0.0.1:{c.port}" for c in farm.collectors}, served


def test_three_collectors_share_one_rate_limit_budget_through_redis(farm: Farm) -> None:
    key = farm.key(scopes="read")
    before = len(farm.nginx.access_log())
    statuses = []
    with httpx.Client(base_url=farm.nginx.url, headers=_auth(key), timeout=30) as client:
        for _ in range(BURST + 60):
            statuses.append(client.get("/v1/alert-rules").status_code)
    # One bucket for the key whichever collector answers: exactly the burst gets through. Per-process buckets
    # would have let all of them through (each collector saw about a third).
    assert statuses.count(200) == BURST and statuses.count(429) == 60, Counter(statuses)
    lines = [line for line in farm.nginx.access_log()[before:] if "/v1/alert-rules" in line.request]
    refused_by = {line.upstreams[-1] for line in lines if line.status == 429}
    served_by = Counter(line.upstreams[-1] for line in lines if line.status == 200)
    assert len(refused_by) == 3 and len(served_by) == 3  # every collector refused the key once it was spent
    assert max(served_by.values()) < BURST  # no single process saw the whole budget


def test_a_batch_retried_after_its_answer_was_lost_is_stored_once(farm: Farm) -> None:
    # First choice: a relay to collector 0 that drops every answer after the collector committed; then collector 1.
    lossy = LossyUpstream(("127.0.0.1", farm.collectors[0].port)).start()
    nginx = Nginx([lossy.address, f"127.0.0.1:{farm.collectors[1].port}"])
    try:
        nginx.start()
        key = farm.key()
        ids, answers = _post_batches(nginx.url, key, batches=6)
        retried = [line for line in nginx.access_log()
                   if line.request.startswith("POST") and line.upstreams[:1] == (lossy.address,)]
    finally:
        nginx.cleanup()
        lossy.stop()
    assert retried, "nginx never chose the lossy collector"
    assert all(len(line.upstreams) == 2 and line.status == 200 for line in retried), retried
    # Each of those batches was committed by collector 0 first (nginx's start-up probe of /healthz went there too) ...
    assert [r for r in lossy.relayed if r.startswith("POST")] == [line.request for line in retried]
    # ... and its retry on collector 1 stored nothing twice: its answer counts the whole batch as duplicates.
    assert sum(a["duplicates"] for a in answers) == 20 * len(retried)
    assert sum(a["accepted"] for a in answers) == len(ids) - 20 * len(retried)
    assert farm.stored(ids) == (len(ids), len(ids))


def test_nginx_body_limits_are_the_collectors_own(farm: Farm) -> None:
    key = farm.key()
    limit = Settings().max_body_bytes
    with httpx.Client(base_url=farm.nginx.url, headers=_auth(key), timeout=120) as client:
        # Above nginx's stock 1 MiB: an ingest batch of ~2 MB passes (the template raised it for ingestion only).
        big = [event_dict(prompt="x" * 900_000), event_dict(prompt="y" * 900_000)]
        ok = client.post("/v1/events", json={"events": big})
        assert ok.status_code == 200 and ok.json()["accepted"] == 2, ok.text
        over = client.post("/v1/events", content=b"{" + b" " * limit + b"}",
                           headers={"Content-Type": "application/json"})
        small_route = client.post("/v1/alert-rules", content=b"{" + b" " * SMALL_BODY_BYTES + b"}",
                                  headers={"Content-Type": "application/json"})
    assert over.status_code == 413 and small_route.status_code == 413
    # nginx logs a refused request once it has closed the connection (after reading and discarding what the
    # client still sends, "lingering close"), which may be a moment after the client has the 413.

    def logged_413() -> list[Logged] | None:
        lines = [line for line in farm.nginx.access_log() if line.status == 413]
        return lines if len(lines) >= 2 else None

    refused = wait_for(logged_413, 60, "nginx to log both refused requests", interval=0.2)
    # nginx refused them itself: no collector was asked.
    assert len(refused) == 2 and all(line.upstreams == () for line in refused), farm.nginx.access_log()[-4:]


def test_a_sigkilled_collector_costs_no_request_and_no_event(farm: Farm) -> None:
    key = farm.key()
    victim = farm.collectors[2]
    address = f"127.0.0.1:{victim.port}"
    before = len(farm.nginx.access_log())
    victim.kill()
    killed_at = time.monotonic()
    try:
        ids, _ = _post_batches(farm.nginx.url, key, batches=12)  # each answered 200 (else it asserts)
        elapsed = time.monotonic() - killed_at
        assert farm.stored(ids) == (len(ids), len(ids))
        lines = [line for line in farm.nginx.access_log()[before:] if line.request.startswith("POST")]
        rerouted = [line for line in lines if address in line.upstreams]
        # The dead collector was tried (connection refused), then left out for fail_timeout: each such batch
        # went on to a live collector; none ended on the dead one.
        assert rerouted and all(line.upstreams[-1] != address for line in rerouted), rerouted
        # max_fails=2 fail_timeout=5s: after two failures nginx leaves it out for 5 s, then tries it once again.
        assert len(rerouted) <= 2 + int(elapsed / 5), (len(rerouted), elapsed)
    finally:
        victim.start(timeout=120)
