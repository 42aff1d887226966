"""Pure wire rules: body packing, the response table, Retry-After parsing, backoff with full jitter."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.sdk.wire import (
    Outcome,
    RetryPolicy,
    Verdict,
    backoff_delay,
    classify_response,
    pack_bodies,
    parse_retry_after,
    retry_delay,
)


def _line(i: int, pad: int = 0) -> bytes:
    return json.dumps({"event_id": f"e{i}", "p": "x" * pad}, separators=(",", ":")).encode()


def test_pack_splits_by_item_count() -> None:
    bodies = pack_bodies("events", [_line(i) for i in range(25)], max_items=10, max_body_bytes=1 << 20)
    assert [n for _, n in bodies] == [10, 10, 5]
    ids = [item["event_id"] for body, _ in bodies for item in json.loads(body)["events"]]
    assert ids == [f"e{i}" for i in range(25)]


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 300), min_size=1, max_size=60),
    max_items=st.integers(1, 20),
    max_body=st.integers(400, 3000),
)
def test_pack_respects_both_limits_and_keeps_every_item_in_order(
    sizes: list[int], max_items: int, max_body: int
) -> None:
    lines = [_line(i, pad) for i, pad in enumerate(sizes)]
    bodies = pack_bodies("feedback", lines, max_items=max_items, max_body_bytes=max_body)
    seen: list[str] = []
    for body, n in bodies:
        items = json.loads(body)["feedback"]
        assert len(items) == n <= max_items
        assert len(body) <= max_body
        seen.extend(item["event_id"] for item in items)
    assert seen == [f"e{i}" for i in range(len(sizes))]


def test_pack_of_nothing_is_no_request() -> None:
    assert pack_bodies("events", [], max_items=10, max_body_bytes=1000) == []


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.OK),
        (202, Verdict.OK),
        (400, Verdict.REJECTED),
        (413, Verdict.REJECTED),
        (422, Verdict.REJECTED),
        (404, Verdict.REJECTED),
        (301, Verdict.REJECTED),
        (401, Verdict.UNAUTHORIZED),
        (403, Verdict.UNAUTHORIZED),
        (429, Verdict.RETRY_AFTER),
        (503, Verdict.RETRY_AFTER),
        (500, Verdict.TRANSIENT),
        (502, Verdict.TRANSIENT),
        (504, Verdict.TRANSIENT),
        (408, Verdict.TRANSIENT),
    ],
)
def test_response_table(status: int, verdict: Verdict) -> None:
    outcome = classify_response(status, {}, b'{"detail": "x"}', 0.0)
    assert outcome.verdict is verdict
    assert outcome.retryable == (verdict in (Verdict.RETRY_AFTER, Verdict.TRANSIENT))


def test_success_counts_and_refusal_detail() -> None:
    ok = classify_response(200, {}, b'{"accepted": 7, "duplicates": 3}', 0.0)
    assert (ok.accepted, ok.duplicates) == (7, 3)
    assert classify_response(200, {}, b"not json", 0.0).verdict is Verdict.OK
    refused = classify_response(422, {}, b'{"detail": [{"loc": ["events", 0], "msg": "bad"}]}', 0.0)
    assert "bad" in refused.detail and "422" in refused.detail
    assert len(classify_response(400, {}, b"x" * 10_000, 0.0).detail) < 600


def test_retry_after_header_is_read() -> None:
    assert classify_response(503, {"retry-after": "5"}, b"", 0.0).retry_after == 5.0
    assert classify_response(429, {}, b"", 0.0).retry_after is None


def test_parse_retry_after_forms() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after("-3", now) == 0.0
    http_date = format_datetime(datetime(2025, 1, 1, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(http_date, now) == pytest.approx(30.0)
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("inf", now) is None
    assert parse_retry_after(None, now) is None


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_cap=30.0)
    rng = random.Random(1)
    for attempt in range(12):
        ceiling = min(30.0, 0.5 * 2**attempt)
        delays = [backoff_delay(attempt, policy, rng.random) for _ in range(2000)]
        assert all(0.0 <= d <= ceiling for d in delays)
        # Uniform on [0, ceiling]: mean ceiling/2 (sd of the mean ~ ceiling*0.0065 for 2000 draws;
        # a 5-sigma band keeps this from ever flaking) and the draws really spread out.
        assert abs(sum(delays) / len(delays) - ceiling / 2) < 0.033 * ceiling
        assert max(delays) > 0.9 * ceiling and min(delays) < 0.1 * ceiling
    assert backoff_delay(10_000, policy, lambda: 1.0) == 30.0  # no overflow on huge attempt numbers


def test_retry_delay_prefers_the_collectors_retry_after_with_a_cap() -> None:
    policy = RetryPolicy(max_retry_after=60.0)
    assert retry_delay(Outcome(Verdict.RETRY_AFTER, retry_after=7.0), 0, policy, lambda: 0.5) == 7.0
    assert retry_delay(Outcome(Verdict.RETRY_AFTER, retry_after=3600.0), 0, policy, lambda: 0.5) == 60.0
    assert retry_delay(Outcome(Verdict.TRANSIENT), 2, policy, lambda: 0.5) == 0.5 * 0.5 * 4
