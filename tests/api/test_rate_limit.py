"""Per-key rate limits: GCRA arithmetic, 429 + Retry-After through the app (nothing stored), the item limit,
limits shared through Redis by several collector processes, and what happens while Redis is down."""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from pydantic import ValidationError
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.api.app import create_app
from monitor.api.ratelimit import (
    ITEMS,
    REQUESTS,
    MemoryBackend,
    Rate,
    RateLimiter,
    RedisBackend,
    backend_name,
    build_rate_limiter,
    gcra,
)
from monitor.models import Event
from monitor.projects.service import get_project
from monitor.settings import Settings
from tests.support.factories import event_dict, make_key
from tests.support.services import free_port
from tests.support.waiting import wait_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _stored(session: Session, slug: str) -> int:
    pid = get_project(session, slug).id
    return int(session.scalar(select(func.count()).select_from(Event).where(Event.project_id == pid)) or 0)


def _counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# ----- the algorithm -----


def test_gcra_allows_the_burst_then_refuses_with_the_exact_wait() -> None:
    rate = Rate(per_second=2.0, burst=3)
    tat, now = 0.0, 100.0
    for _ in range(3):
        decision, tat = gcra(tat, now, rate, 1)
        assert decision.allowed
    refused, same_tat = gcra(tat, now, rate, 1)
    assert not refused.allowed and same_tat == tat
    assert refused.retry_after == pytest.approx(0.5)  # one unit refills every 1/rate seconds
    assert gcra(tat, now + 0.49, rate, 1)[0].allowed is False
    assert gcra(tat, now + 0.5, rate, 1)[0].allowed is True


def test_gcra_cost_counts_units_and_the_steady_rate_holds() -> None:
    rate = Rate(per_second=10.0, burst=20)
    decision, tat = gcra(0.0, 50.0, rate, 20)
    assert decision.allowed
    decision, _ = gcra(tat, 50.0, rate, 5)
    assert not decision.allowed and decision.retry_after == pytest.approx(0.5)
    # Asking every 1/16 s (exact in binary) for 200 steps: the burst plus one unit per 1/8 s elapsed gets through.
    steady = Rate(per_second=8.0, burst=20)
    clock = FakeClock()
    backend = MemoryBackend(clock)
    allowed = 0
    for _ in range(200):
        allowed += backend.take("k", steady, 1).allowed
        clock.now += 0.0625
    elapsed = 199 * 0.0625
    assert allowed == steady.burst + int(steady.per_second * elapsed)


def test_memory_backend_keeps_keys_apart() -> None:
    backend = MemoryBackend(FakeClock())
    rate = Rate(1.0, 1)
    assert backend.take("a", rate, 1).allowed
    assert not backend.take("a", rate, 1).allowed
    assert backend.take("b", rate, 1).allowed


def test_backend_choice_and_settings_validation() -> None:
    assert backend_name(Settings(runner="inprocess")) == "memory"
    assert backend_name(Settings(runner="celery")) == "redis"
    assert backend_name(Settings(runner="celery", rate_limit_backend="memory")) == "memory"
    # Limits off: three bursts' worth of requests and of items at once, far over the default limits, never raise.
    defaults = Settings()
    off = build_rate_limiter(Settings(rate_limit_per_second=0, rate_limit_events_per_second=0))
    assert off.backend is None
    for _ in range(3 * defaults.rate_limit_burst):
        off.check("anyone", REQUESTS)
    for _ in range(3):
        off.check("anyone", ITEMS, cost=defaults.rate_limit_events_burst)
    # ... where the default limits refuse the same traffic.
    on = build_rate_limiter(defaults)
    with pytest.raises(HTTPException) as refused:
        for _ in range(3 * defaults.rate_limit_burst):
            on.check("anyone", REQUESTS)
    assert refused.value.status_code == 429
    with pytest.raises(HTTPException):
        for _ in range(3):
            on.check("anyone", ITEMS, cost=defaults.rate_limit_events_burst)
    with pytest.raises(ValidationError, match="RATE_LIMIT_EVENTS_BURST"):
        Settings(rate_limit_events_burst=10, max_batch_events=100)
    Settings(rate_limit_events_burst=10, max_batch_events=100, rate_limit_events_per_second=0)  # off: fine


# ----- through the app -----


@pytest.fixture
def limited_client(
    backend: str, request: pytest.FixtureRequest, connection: Connection, session_maker: sessionmaker[Session],
    tmp_path: Path,
) -> Iterator[TestClient]:
    url = request.getfixturevalue("pg_url" if backend == "postgres" else "sqlite_url")
    settings = Settings(database_url=url, data_dir=tmp_path, rate_limit_per_second=1, rate_limit_burst=3,
                        rate_limit_events_per_second=10, rate_limit_events_burst=20, max_batch_events=20)
    app = create_app(settings, engine=connection.engine)
    app.state.session_factory = session_maker
    with TestClient(app) as c:
        yield c


def test_requests_over_the_limit_get_429_with_retry_after_and_store_nothing(
    limited_client: TestClient, session: Session
) -> None:
    key, other = make_key(session), make_key(session)
    session.commit()
    before = _counter("driftloop_rate_limited_total", limit="requests")
    for _ in range(3):
        ok = limited_client.post("/v1/events", json={"events": [event_dict()]}, headers=_auth(key.key))
        assert ok.status_code == 200, ok.text
    refused = limited_client.post("/v1/events", json={"events": [event_dict()]}, headers=_auth(key.key))
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"  # 1 request/s: the next one is due within a second
    assert "rate limit exceeded for this API key" in refused.json()["detail"]
    assert "nothing was stored" in refused.json()["detail"]
    assert _stored(session, key.project_slug) == 3
    assert _counter("driftloop_rate_limited_total", limit="requests") == before + 1
    # Reads count too (the limit is per key, not per route), and another key has its own bucket.
    assert limited_client.get("/v1/alert-rules", headers=_auth(key.key)).status_code == 429
    assert limited_client.get("/v1/alert-rules", headers=_auth(other.key)).status_code == 200


def test_refused_authentication_does_not_spend_a_keys_budget(limited_client: TestClient, session: Session) -> None:
    key = make_key(session)
    session.commit()
    for _ in range(10):
        assert limited_client.get("/v1/alert-rules", headers=_auth("dl_nope_" + key.key[8:])).status_code == 401
    assert limited_client.get("/v1/alert-rules", headers=_auth(key.key)).status_code == 200


def test_requests_refused_for_a_missing_scope_still_spend_the_keys_budget(
    limited_client: TestClient, session: Session
) -> None:
    # The scope check comes after the limit (one path for every keyed request): a leaked ingest key cannot probe
    # admin routes faster than it could use its own.
    key = make_key(session, scopes="ingest")
    session.commit()
    for _ in range(3):
        assert limited_client.get("/v1/alert-rules", headers=_auth(key.key)).status_code == 403
    refused = limited_client.post("/v1/events", json={"events": [event_dict()]}, headers=_auth(key.key))
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert _stored(session, key.project_slug) == 0


def test_item_limit_refuses_a_batch_that_would_exceed_it(limited_client: TestClient, session: Session) -> None:
    key = make_key(session)
    session.commit()
    before = _counter("driftloop_rate_limited_total", limit="items")
    first = limited_client.post("/v1/events", json={"events": [event_dict() for _ in range(15)]},
                                headers=_auth(key.key))
    assert first.status_code == 200, first.text
    second = limited_client.post("/v1/events", json={"events": [event_dict() for _ in range(10)]},
                                 headers=_auth(key.key))
    assert second.status_code == 429, second.text
    assert "events or feedback items per second" in second.json()["detail"]
    assert int(second.headers["Retry-After"]) == 1  # 5 missing items at 10/s: half a second, rounded up
    assert _stored(session, key.project_slug) == 15
    assert _counter("driftloop_rate_limited_total", limit="items") == before + 1
    # Feedback spends the same item budget.
    fb = limited_client.post("/v1/feedback", json={"feedback": [{"feedback_id": f"f{i}", "event_id": "e", "score": 1}
                                                                for i in range(10)]}, headers=_auth(key.key))
    assert fb.status_code == 429


def test_openapi_documents_429_with_retry_after_on_every_authenticated_route(limited_client: TestClient) -> None:
    from monitor.api.openapi import authenticated_routes

    app = limited_client.app
    spec = limited_client.get("/openapi.json").json()
    routes = authenticated_routes(app)  # type: ignore[arg-type]
    assert len(routes) >= 20
    for route in routes:
        for method in route.methods or ():
            op = spec["paths"][route.path_format][method.lower()]
            assert "Retry-After" in op["responses"]["429"]["headers"], (route.path_format, method)
            assert op["security"] == [{"projectKey": []}]


# ----- shared through Redis -----


def _redis_limiter(url: str, prefix: str, rate: Rate, **kwargs: float) -> RateLimiter:
    return RateLimiter(RedisBackend(url, prefix, **kwargs), requests=rate, items=None)  # type: ignore[arg-type]


@pytest.mark.redis
def test_collector_processes_share_one_limit_through_redis(redis_url: str, celery_key_prefix: str) -> None:
    # Two limiters are what two collector processes hold; all state is in Redis.
    rate = Rate(per_second=0.5, burst=4)
    a, b = _redis_limiter(redis_url, celery_key_prefix, rate), _redis_limiter(redis_url, celery_key_prefix, rate)
    identity = uuid.uuid4().hex
    passed = 0
    for limiter in (a, b, a, b, a, b):
        try:
            limiter.check(identity, REQUESTS)
            passed += 1
        except Exception as exc:
            assert getattr(exc, "status_code", None) == 429
            assert int(getattr(exc, "headers", {})["Retry-After"]) == 2  # 0.5/s: next unit within 2 s
    assert passed == 4
    assert isinstance(a.backend, RedisBackend)
    ttl = a.backend._redis.pttl(f"{celery_key_prefix}{REQUESTS}:{identity}")
    assert 0 < ttl <= 8000  # the bucket expires once it would be full again: no key lives forever


def _start_redis(port: int, directory: str) -> None:
    subprocess.run(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--daemonize", "yes", "--dir", directory, "--pidfile", f"{directory}/pid"],
                   check=True, capture_output=True)


def _stop_redis(port: int) -> None:
    subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True, check=False)


@pytest.mark.redis
def test_while_redis_is_down_each_process_limits_on_its_own_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port, directory = free_port(), tempfile.mkdtemp(prefix="driftloop-rl-redis-")
    _start_redis(port, directory)
    url = f"redis://127.0.0.1:{port}/0"
    rate = Rate(per_second=0.001, burst=2)  # practically no refill during the test
    limiter = _redis_limiter(url, "rl-test:", rate, retry_seconds=0.0)
    assert isinstance(limiter.backend, RedisBackend)
    try:
        wait_for(lambda: _answers(limiter.backend), 10, "the throwaway Redis")  # type: ignore[arg-type]
        limiter.check("k", REQUESTS)
        _stop_redis(port)
        wait_for(lambda: not _answers(limiter.backend), 10, "Redis to stop")  # type: ignore[arg-type]
        errors_before = _counter("driftloop_rate_limit_backend_errors_total")
        caplog.set_level(logging.WARNING, logger="monitor.api.ratelimit")
        # Fail over to this process's buckets: still limited (2 allowed, the third refused), never a 500.
        limiter.check("k", REQUESTS)
        limiter.check("k", REQUESTS)
        with pytest.raises(Exception) as refused:
            limiter.check("k", REQUESTS)
        assert getattr(refused.value, "status_code", None) == 429
        assert _counter("driftloop_rate_limit_backend_errors_total") == errors_before + 3
        down = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
        assert len(down) == 1  # logged once, counted every time
        _start_redis(port, directory)
        wait_for(lambda: _answers(limiter.backend), 10, "Redis to come back")  # type: ignore[arg-type]
        # The restarted Redis is empty (no persistence): a fresh shared bucket. That these pass shows Redis is
        # used again, for this process's own fallback bucket is spent.
        limiter.check("k", REQUESTS)
        limiter.check("k", REQUESTS)
        with pytest.raises(Exception) as again:
            limiter.check("k", REQUESTS)
        assert getattr(again.value, "status_code", None) == 429
        assert any("Redis answers again" in r.getMessage() for r in caplog.records)
    finally:
        _stop_redis(port)
        shutil.rmtree(directory, ignore_errors=True)


def _answers(backend: RedisBackend) -> bool:
    import redis

    try:
        return bool(backend._redis.ping())
    except redis.RedisError:
        return False


@pytest.mark.redis
def test_app_with_the_redis_backend_answers_429(
    redis_url: str, celery_key_prefix: str, sqlite_url: str, sqlite_engine: Engine
) -> None:
    settings = Settings(database_url=sqlite_url, redis_url=redis_url, celery_key_prefix=celery_key_prefix,
                        rate_limit_backend="redis", rate_limit_per_second=1, rate_limit_burst=1)
    with Session(sqlite_engine) as s:
        key = make_key(s)
        s.commit()
    app = create_app(settings, engine=sqlite_engine)
    assert isinstance(app.state.rate_limiter.backend, RedisBackend)
    with TestClient(app) as c:
        assert c.get("/v1/alert-rules", headers=_auth(key.key)).status_code == 200
        refused = c.get("/v1/alert-rules", headers=_auth(key.key))
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
