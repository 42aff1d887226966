"""The msgspec fast path accepts exactly what the pydantic schema accepts, with the same values, and leaves every
body it cannot vouch for to pydantic (which then gives the usual errors)."""

from __future__ import annotations

import json
import random
from typing import Any

import msgspec
import pytest
from fastapi import HTTPException

from monitor.api.body import parse_batch
from monitor.ingest.fastparse import parse_events
from monitor.schemas import EventBatch, Limits

LIMITS = Limits(max_text_chars=50, max_metadata_bytes=200, max_batch_items=5)


def pydantic_result(raw: bytes, limits: Limits = LIMITS) -> list[dict[str, Any]] | None:
    try:
        return [e.model_dump() for e in parse_batch(EventBatch, raw, limits).events]
    except HTTPException:
        return None


def fast_result(raw: bytes, limits: Limits = LIMITS) -> list[dict[str, Any]] | None:
    events = parse_events(raw, limits)
    return None if events is None else [msgspec.structs.asdict(e) for e in events]


def body(*events: dict[str, Any]) -> bytes:
    return json.dumps({"events": list(events)}, ensure_ascii=False).encode()


VALID = [
    body({"event_id": "a"}),
    body({"event_id": "a.b:c-d_e", "timestamp": 1764800000.123456, "prompt": "héllo 🙂", "response": "x" * 50,
          "model": "m" * 256, "latency_ms": 0, "prompt_tokens": 12, "completion_tokens": 0,
          "metadata": {"locale": "en", "n": [1, 2.5, None, {"deep": True}]}}),
    body({"event_id": "t1", "timestamp": "2026-12-04T10:00:00+02:00"}, {"event_id": "t2", "timestamp": "2026-12-04"},
         {"event_id": "t3", "timestamp": 1764800000123}, {"event_id": "t4", "timestamp": 0}),
    body({"event_id": "n", "metadata": {"k": 9_223_372_036_854_775_807 // 10**3, "f": 1e300, "z": -0.0}}),
    body({"event_id": "e", "error": "boom\nline two\ttab", "trace_id": "t", "session_id": "s"}),
    b'{"events":[{"event_id":"dup","event_id":"dup2","metadata":{"k":1,"k":2}}]}',
]

INVALID = [
    b"", b"null", b"[]", b'{"events":[]}', body(*[{"event_id": str(i)} for i in range(6)]),  # batch size
    body({"event_id": ""}), body({"event_id": "a b"}), body({"event_id": "x" * 129}), body({"event_id": "a\n"}),
    body({"event_id": "a", "prompt": "x" * 51}), body({"event_id": "a", "model": "m" * 257}),
    body({"event_id": "a", "latency_ms": -1}), body({"event_id": "a", "prompt_tokens": 100_000_001}),
    body({"event_id": "a", "metadata": {"big": "x" * 300}}), body({"event_id": "a", "metadata": {"i": 2**64}}),
    body({"event_id": "a", "timestamp": "1969-12-31T23:59:59Z"}), body({"event_id": "a", "timestamp": "yesterday"}),
    body({"event_id": "a", "unknown": 1}), body({"event_id": "a", "prompt": "nul\x00"}),
    b'{"events":[{"event_id":"a","prompt":"\\ud800"}]}', b'{"events":[{"event_id":"a","latency_ms":NaN}]}',
    b'{"events":[{"event_id":"a","metadata":' + b'{"a":' * 300 + b"1" + b"}" * 300 + b"}]}",
    b'{"events":[{"event_id":"a","metadata":' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}]}",  # past msgspec's limit
    b'{"events":[{"event_id":"a"}]} trailing', b'\xef\xbb\xbf{"events":[{"event_id":"a"}]}',
]


@pytest.mark.parametrize("raw", VALID)
def test_valid_bodies_give_the_same_events(raw: bytes) -> None:
    expected = pydantic_result(raw)
    assert expected is not None
    assert fast_result(raw) == expected


@pytest.mark.parametrize("raw", INVALID)
def test_invalid_bodies_are_left_to_pydantic(raw: bytes) -> None:
    assert pydantic_result(raw) is None
    assert parse_events(raw, LIMITS) is None


def test_lax_values_pydantic_accepts_are_left_to_it() -> None:
    # pydantic's lax mode turns "12" and 12.0 into 12; the fast path declines and pydantic decides as before.
    for event in ({"event_id": "a", "prompt_tokens": 12.0}, {"event_id": "a", "latency_ms": "1.5"}):
        raw = body(event)
        assert parse_events(raw, LIMITS) is None
        assert pydantic_result(raw) is not None


TRICKY: list[Any] = [None, 0, -1, 1.5, 2**63, 2**64, 1e308, True, "", "x", "x" * 51, "x" * 257, "a b", "é" * 40,
                     "\x00", "\n", "2026-12-04T10:00:00Z", "0001-01-01T00:00:00+23:59", 1764800000.5, 3e10, [], {},
                     {"a": None}, {"a": [1, {"b": "\x00"}]}, {"n": float("inf")}, "\ud83d\ude00", 100_000_000]
FIELDS = ["event_id", "timestamp", "trace_id", "model", "prompt", "response", "latency_ms", "prompt_tokens",
          "error", "metadata", "extra"]


def test_random_bodies_never_disagree() -> None:
    """Fuzz: whenever the fast path accepts, pydantic accepts the same values; whenever pydantic refuses, the fast
    path declined."""
    rng = random.Random(22)
    accepted_fast = 0
    for _ in range(3000):
        events = []
        for j in range(rng.randint(1, 3)):
            event: dict[str, Any] = {"event_id": f"e{j}"}
            for name in rng.sample(FIELDS, rng.randint(0, 4)):
                event[name] = rng.choice(TRICKY)
            events.append(event)
        try:
            raw = json.dumps({"events": events}, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
        except ValueError:  # inf in metadata: json.dumps writes Infinity, which is not JSON; both must refuse
            continue
        fast, slow = fast_result(raw), pydantic_result(raw)
        if fast is not None:
            accepted_fast += 1
            assert fast == slow, raw
    assert accepted_fast > 200  # the fuzz exercised the fast path, not only its refusals


def _nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"x": 1}
    for _ in range(levels):
        value = {"k": value}
    return value


@pytest.mark.parametrize("levels", [0, 5, 62, 63, 64, 65, 66, 200, 300])
def test_deep_metadata_is_left_to_pydantic_past_the_depth_limit(levels: int) -> None:
    # The depth walk runs only for metadata whose JSON is long enough to nest past the limit: the bound must hold
    # right at the limit too (an object 64 levels below the top one accepted, 65 left to pydantic), and past the
    # JSON encoder's own nesting limit (orjson stops at 255).
    limits = Limits(max_metadata_bytes=100_000)
    raw = body({"event_id": "e1", "metadata": _nested(levels)})
    fast = fast_result(raw, limits)
    if levels <= 64:
        assert fast is not None and fast == pydantic_result(raw, limits)
    else:
        assert fast is None


def test_epoch_seconds_convert_exactly_as_pydantic() -> None:
    """The fast conversion of epoch seconds (`_times`) gives pydantic's `UtcTime` value for every number, ties of
    half a microsecond (odd multiples of 1/128 s, where the two roundings differ) and edges included; values it does
    not take (strings, milliseconds, negatives, booleans) go to pydantic, and what pydantic refuses is refused."""
    from pydantic import ValidationError

    from monitor.ingest.fastparse import _TIMES, _times

    rng = random.Random(16)
    values: list[Any] = [rng.uniform(0, 2.1e10) for _ in range(20_000)]
    values += [rng.uniform(1.6e9, 1.9e9) for _ in range(20_000)]
    values += [rng.randrange(0, 2**40) / 128 for _ in range(10_000)]  # exact multiples of 1/128 s: ties and not
    values += [rng.randrange(0, 2 * 10**10) for _ in range(2_000)]  # ints
    edges = [0, 0.0, -0.0, 1 / 128, 3 / 128, 2e10, 2e10 - 1, 19_999_999_999.999996, 20_000_000_001, 1764800000.5,
             1764800000.0078125, None, "2026-12-04T10:00:00+02:00", 1764800000123, 1764800000123.5]
    values += edges
    expected = _TIMES.validate_python(values)
    assert _times(values) == expected
    ties = [v for v in values if isinstance(v, float) and (v * 128).is_integer() and int(v * 128) % 2]
    assert len(ties) > 4_000  # the rounding that differs was exercised
    for refused in (-1, -0.5, True, "yesterday", 3e14 * 1000):
        with pytest.raises(ValidationError):
            _TIMES.validate_python([refused])
        with pytest.raises(ValidationError):
            _times([refused])
