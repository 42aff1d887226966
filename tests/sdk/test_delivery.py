"""Client -> real local HTTP receiver: batching, wire format, and the contract's response table."""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable

import pytest

from monitor.sdk import Client
from tests.sdk.receiver import Receiver, Reply

MakeClient = Callable[..., Client]


def test_batches_by_size_without_waiting_for_the_interval(
    receiver: Receiver, make_client: MakeClient
) -> None:
    client = make_client(receiver.url, batch_size=10, flush_interval=3600)
    ids = [client.log(f"prompt {i}", f"answer {i}") for i in range(25)]
    # Two full batches go out on their own; the interval (an hour) plays no part.
    assert receiver.wait_for(lambda: len(receiver.events) >= 20)
    assert [len(r.items()) for r in receiver.requests] == [10, 10]
    assert client.flush(5)
    assert [len(r.items()) for r in receiver.requests] == [10, 10, 5]
    assert list(receiver.events) == ids
    stats = client.stats
    assert (stats.queued, stats.sent, stats.requests, stats.in_queue) == (25, 25, 3, 0)


def test_batches_by_interval(receiver: Receiver, make_client: MakeClient) -> None:
    client = make_client(receiver.url, batch_size=500, flush_interval=0.1)
    ids = [client.log(f"p{i}") for i in range(3)]
    assert receiver.wait_for(lambda: len(receiver.events) == 3, timeout=5)  # no flush() called
    assert len(receiver.requests) == 1
    assert list(receiver.events) == ids


def test_wire_format_gzip_headers_and_fields(receiver: Receiver, make_client: MakeClient) -> None:
    client = make_client(receiver.url, default_model="house-model")
    event_id = client.log(
        "What is 2+2?",
        "4",
        latency_ms=12.5,
        prompt_tokens=5,
        completion_tokens=1,
        session_id="sess-1",
        metadata={"tenant": "acme"},
    )
    feedback_id = client.feedback(event_id, score=1, label="thumbs_up", comment="nice")
    assert client.flush(5)
    events_request = next(r for r in receiver.requests if r.path == "/v1/events")
    assert events_request.headers["content-encoding"] == "gzip"
    assert events_request.raw[:2] == b"\x1f\x8b"
    assert json.loads(gzip.decompress(events_request.raw)) == events_request.payload
    assert events_request.headers["authorization"] == "Bearer test-key"
    assert events_request.headers["content-type"] == "application/json"
    assert events_request.headers["user-agent"].startswith("driftloop-sdk/")
    event = receiver.events[event_id]
    assert {k: v for k, v in event.items() if k != "timestamp"} == {
        "event_id": event_id,
        "model": "house-model",
        "prompt": "What is 2+2?",
        "response": "4",
        "latency_ms": 12.5,
        "prompt_tokens": 5,
        "completion_tokens": 1,
        "session_id": "sess-1",
        "metadata": {"tenant": "acme"},
    }
    assert isinstance(event["timestamp"], float)
    assert receiver.feedback[feedback_id] == {
        "feedback_id": feedback_id,
        "event_id": event_id,
        "timestamp": receiver.feedback[feedback_id]["timestamp"],
        "score": 1.0,
        "label": "thumbs_up",
        "comment": "nice",
    }


def test_gzip_can_be_turned_off(receiver: Receiver, make_client: MakeClient) -> None:
    client = make_client(receiver.url, gzip=False)
    client.log("plain")
    assert client.flush(5)
    request = receiver.requests[0]
    assert "content-encoding" not in request.headers
    assert json.loads(request.raw)["events"][0]["prompt"] == "plain"


def test_retries_after_a_500_then_delivers(receiver: Receiver, make_client: MakeClient) -> None:
    receiver.script(Reply(500))
    client = make_client(receiver.url)
    event_id = client.log("retry me")
    # Wait on the receiver, not flush(): a pending flush would (rightly) spool instead of backing off.
    assert receiver.wait_for(lambda: event_id in receiver.events)
    assert [r.status for r in receiver.requests] == [500, 200]
    assert receiver.requests[0].body == receiver.requests[1].body  # the same batch, resent
    assert client.flush(5)
    assert client.stats.retries == 1 and client.stats.sent == 1
    [(reason, delay)] = client.retry_schedule
    assert reason == "transient" and 0.0 <= delay <= 0.01  # full jitter under backoff_base * 2**0


def test_retry_after_is_honored(receiver: Receiver, make_client: MakeClient) -> None:
    receiver.script(Reply(503, {"Retry-After": "7"}), Reply(429, {"Retry-After": "2"}))
    slept: list[float] = []
    client = make_client(receiver.url, _sleep=slept.append)
    event_id = client.log("later please")
    assert receiver.wait_for(lambda: event_id in receiver.events)
    assert slept == [7.0, 2.0]
    assert client.retry_schedule == [("retry_after", 7.0), ("retry_after", 2.0)]


def test_unreachable_without_spool_drops_after_bounded_retries(make_client: MakeClient) -> None:
    dead = Receiver()
    dead.stop()  # nothing listens on this port any more
    slept: list[float] = []
    client = make_client(dead.url, spool_dir=False, _sleep=slept.append)
    client.log("lost")
    assert not client.flush(5)  # lost, and flush says so
    stats = client.stats
    assert stats.dropped_unreachable == 1 and stats.requests == 3 and stats.retries == 2
    assert len(slept) == 2 and all(0 <= s <= 0.05 for s in slept)


def test_422_batch_is_dropped_counted_and_not_retried(
    receiver: Receiver, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.script(Reply(422, body=b'{"detail": "events.0.prompt: too long"}'))
    client = make_client(receiver.url)
    for i in range(3):
        client.log(f"p{i}")
    with caplog.at_level(logging.WARNING, logger="driftloop.sdk"):
        assert client.flush(5)
    assert len(receiver.requests) == 1
    assert client.stats.dropped_rejected == 3 and client.stats.retries == 0
    assert "too long" in caplog.text and "test-key" not in caplog.text
    client.log("next one")
    assert client.flush(5)
    assert len(receiver.events) == 1  # the client keeps working after a refusal


def test_bad_api_key_drops_and_warns_once(
    receiver: Receiver, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.default = Reply(401)
    client = make_client(receiver.url)
    with caplog.at_level(logging.WARNING, logger="driftloop.sdk"):
        for _ in range(3):
            client.log("x")
            assert client.flush(5)
    assert client.stats.dropped_unauthorized == 3
    assert len(receiver.requests) == 3
    warnings = [r for r in caplog.records if "api key" in r.getMessage()]
    assert len(warnings) == 1
    assert "test-key" not in caplog.text


def test_one_invalid_item_never_sinks_its_batch(
    receiver: Receiver, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(receiver.url)
    good1 = client.log("fine")
    client.log("has a \x00 NUL")
    client.log("bad latency", latency_ms=-5)
    client.feedback("e1", comment="no score, label or correction")
    good2 = client.log("also fine", metadata={"cycle": None})
    with caplog.at_level(logging.WARNING, logger="driftloop.sdk"):
        assert client.flush(5)
    assert set(receiver.events) == {good1, good2}
    assert client.stats.dropped_invalid == 3
    assert "NUL" in caplog.text


def test_huge_batches_are_split_to_respect_the_body_limit(
    receiver: Receiver, make_client: MakeClient
) -> None:
    from monitor.sdk import Limits

    client = make_client(receiver.url, limits=Limits(max_body_bytes=20_000), batch_size=100)
    ids = [client.log("x" * 1500) for _ in range(40)]
    assert client.flush(5)
    assert list(receiver.events) == ids
    assert len(receiver.requests) > 2
    assert all(len(r.body) <= 20_000 for r in receiver.requests)
