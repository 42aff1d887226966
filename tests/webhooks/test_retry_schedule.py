"""The retry schedule: exponential backoff with equal jitter, capped; Retry-After as a floor."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from monitor.webhooks.retry import MAX_RETRY_AFTER_SECONDS, RetryPolicy, parse_retry_after

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def test_nominal_doubles_up_to_the_cap() -> None:
    p = RetryPolicy(max_attempts=20, base_seconds=5, cap_seconds=300)
    assert [p.nominal(a) for a in range(1, 9)] == [5, 10, 20, 40, 80, 160, 300, 300]
    assert p.nominal(10_000) == 300  # no overflow


def test_jittered_delays_stay_within_half_and_full_nominal_and_spread() -> None:
    p = RetryPolicy(max_attempts=20, base_seconds=2, cap_seconds=1000)
    rng = random.Random(7)
    for attempt in range(1, 10):
        delays = [p.next_delay(attempt, rng.random()) for _ in range(400)]
        nominal = p.nominal(attempt)
        assert all(d is not None and nominal / 2 <= d <= nominal for d in delays)
        # jitter really spreads retries: the draws cover most of the allowed band
        assert max(delays) - min(delays) > 0.4 * nominal  # type: ignore[operator]


def test_attempts_run_out() -> None:
    p = RetryPolicy(max_attempts=3, base_seconds=1, cap_seconds=10)
    assert p.next_delay(2, 0.5) is not None
    assert p.next_delay(3, 0.5) is None


def test_retry_after_is_a_floor_and_is_capped() -> None:
    p = RetryPolicy(max_attempts=10, base_seconds=1, cap_seconds=10)
    assert p.next_delay(1, 0.0, retry_after=120) == 120
    assert p.next_delay(5, 0.99, retry_after=0.1) == pytest.approx(p.backoff(5, 0.99))
    assert p.next_delay(1, 0.0, retry_after=10**9) == MAX_RETRY_AFTER_SECONDS


def test_parse_retry_after() -> None:
    assert parse_retry_after("120", NOW) == 120
    assert parse_retry_after(format_datetime(NOW + timedelta(seconds=90), usegmt=True), NOW) == 90
    assert parse_retry_after(format_datetime(NOW - timedelta(seconds=90), usegmt=True), NOW) == 0
    assert parse_retry_after(None, NOW) is None
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after("-5", NOW) is None


def test_bad_inputs() -> None:
    with pytest.raises(ValueError):
        RetryPolicy().nominal(0)
    with pytest.raises(ValueError):
        RetryPolicy().backoff(1, 1.0)
