"""Item checks and encoding: what the worker sends must be what the collector accepts, item by item."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.sdk.items import (
    EVENT,
    EVENT_FIELDS,
    FEEDBACK,
    FEEDBACK_FIELDS,
    InvalidItem,
    Limits,
    encode_event,
    encode_feedback,
    encode_item,
)

LIMITS = Limits()


def event(**fields: Any) -> tuple[Any, ...]:
    fields.setdefault("event_id", "e1")
    return tuple(fields.get(name) for name in EVENT_FIELDS)


def feedback(**fields: Any) -> tuple[Any, ...]:
    fields.setdefault("feedback_id", "f1")
    fields.setdefault("event_id", "e1")
    return tuple(fields.get(name) for name in FEEDBACK_FIELDS)


def decode(line: bytes) -> dict[str, Any]:
    value = json.loads(line)
    assert isinstance(value, dict)
    return value


def test_full_event_round_trips_and_omits_none() -> None:
    line = encode_event(
        event(
            timestamp=1_700_000_000.5,
            trace_id="t-1",
            session_id="s:1",
            model="m",
            model_version="3",
            prompt_template_id="tpl",
            prompt_template_version="v2",
            prompt="héllo",
            response="wörld",
            latency_ms=12,
            prompt_tokens=3,
            completion_tokens=4.0,
            metadata={"user": "u1", "n": [1, 2]},
        ),
        LIMITS,
    )
    data = decode(line)
    assert data == {
        "event_id": "e1",
        "timestamp": 1_700_000_000.5,
        "trace_id": "t-1",
        "session_id": "s:1",
        "model": "m",
        "model_version": "3",
        "prompt_template_id": "tpl",
        "prompt_template_version": "v2",
        "prompt": "héllo",
        "response": "wörld",
        "latency_ms": 12.0,
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "metadata": {"user": "u1", "n": [1, 2]},
    }
    assert "error" not in data
    assert "héllo".encode() in line  # UTF-8 on the wire, not \u escapes


def test_default_model_fills_only_missing_model() -> None:
    assert decode(encode_event(event(), LIMITS, default_model="dflt"))["model"] == "dflt"
    assert decode(encode_event(event(model="own"), LIMITS, default_model="dflt"))["model"] == "own"


def test_datetimes_become_utc_iso_strings() -> None:
    aware = datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert decode(encode_event(event(timestamp=aware), LIMITS))["timestamp"] == "2024-05-01T10:00:00+00:00"
    parsed = datetime.fromisoformat(
        decode(encode_event(event(timestamp="2024-05-01T10:00:00Z"), LIMITS))["timestamp"]
    )
    assert parsed == datetime(2024, 5, 1, 10, tzinfo=UTC)
    naive = datetime(2024, 5, 1, 12, 0)
    sent = datetime.fromisoformat(decode(encode_event(event(timestamp=naive), LIMITS))["timestamp"])
    assert sent == naive.astimezone(UTC)  # naive means local time, as everywhere in Python


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"event_id": ""}, "event_id"),
        ({"event_id": "has space"}, "event_id"),
        ({"event_id": "x" * 129}, "event_id"),
        ({"event_id": 42}, "event_id"),
        ({"trace_id": "a/b"}, "trace_id"),
        ({"session_id": "é"}, "session_id"),
        ({"model": "m" * 257}, "model"),
        ({"prompt": 123}, "prompt must be a str"),
        ({"prompt": "a\x00b"}, "NUL"),
        ({"response": "r" * 1_000_001}, "response is 1000001"),
        ({"error": "e" * 8193}, "error"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"latency_ms": math.nan}, "latency_ms"),
        ({"latency_ms": "12"}, "latency_ms must be a number"),
        ({"latency_ms": True}, "latency_ms must be a number"),
        ({"prompt_tokens": 1.5}, "whole number"),
        ({"completion_tokens": -2}, "completion_tokens"),
        ({"timestamp": "yesterday"}, "ISO-8601"),
        ({"timestamp": 1.7e12}, "timestamp"),
        ({"metadata": ["not", "a", "dict"]}, "JSON object"),
        ({"metadata": {"x": math.inf}}, "NaN or Infinity"),
        ({"metadata": {"x": "a\x00"}}, "NUL"),
        ({"metadata": {"big": "x" * 70_000}}, "metadata serializes to"),
    ],
)
def test_invalid_events_are_refused_with_a_reason(fields: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidItem) as info:
        encode_event(event(**fields), LIMITS)
    assert fragment in info.value.reason


def test_metadata_size_limit_uses_the_collectors_measure() -> None:
    # The collector measures json.dumps(value, ensure_ascii=False) in UTF-8 bytes, default separators.
    limits = Limits(max_metadata_bytes=100)
    for size in range(80, 120):
        metadata = {"k": "é" * size}
        measured = len(json.dumps(metadata, ensure_ascii=False).encode())
        if measured <= 100:
            assert decode(encode_event(event(metadata=metadata), limits))["metadata"] == metadata
        else:
            with pytest.raises(InvalidItem):
                encode_event(event(metadata=metadata), limits)


def test_text_limit_is_configurable() -> None:
    limits = Limits(max_text_chars=10)
    assert decode(encode_event(event(prompt="x" * 10), limits))["prompt"] == "x" * 10
    with pytest.raises(InvalidItem):
        encode_event(event(prompt="x" * 11), limits)


def test_item_larger_than_a_request_is_refused() -> None:
    limits = Limits(max_body_bytes=1000)
    with pytest.raises(InvalidItem, match="request limit"):
        encode_event(event(prompt="x" * 2000), limits)


def test_lone_surrogates_are_replaced_not_fatal() -> None:
    line = encode_event(event(prompt="bad \ud800 half", metadata={"k\udc00": ["\ud83d\ude00"]}), LIMITS)
    data = decode(line)
    assert data["prompt"] == "bad \ufffd half"
    assert data["metadata"] == {"k\ufffd": ["\U0001f600"]}  # a split pair is rejoined, not lost


def test_unserializable_metadata_values_use_their_str() -> None:
    when = datetime(2024, 1, 1, tzinfo=UTC)
    assert decode(encode_event(event(metadata={"when": when}), LIMITS))["metadata"] == {"when": str(when)}


def test_feedback_needs_a_signal_and_ids() -> None:
    assert decode(encode_feedback(feedback(score=1), LIMITS)) == {
        "feedback_id": "f1",
        "event_id": "e1",
        "score": 1.0,
    }
    assert decode(encode_feedback(feedback(label="thumbs_up"), LIMITS))["label"] == "thumbs_up"
    assert (
        decode(encode_feedback(feedback(corrected_response="better"), LIMITS))["corrected_response"]
        == "better"
    )
    with pytest.raises(InvalidItem, match="at least one"):
        encode_feedback(feedback(comment="only a comment"), LIMITS)
    with pytest.raises(InvalidItem):
        encode_feedback(feedback(event_id=None, score=1), LIMITS)
    with pytest.raises(InvalidItem, match="score"):
        encode_feedback(feedback(score=2e6), LIMITS)
    with pytest.raises(InvalidItem, match="comment"):
        encode_feedback(feedback(score=1, comment="c" * 16_385), LIMITS)


@pytest.mark.parametrize("ts", ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59",
                                datetime.fromisoformat("0001-01-01T00:00:00+23:59")])
def test_extreme_offsets_are_refused_in_the_client_for_events_and_feedback(ts: Any) -> None:
    """Issue #18, finding 6: these used to reach the collector as a 500, which the SDK retried forever. They are
    dropped here, counted as invalid, and never sent (the collector's answer, a 422, is not retried either:
    tests/sdk/test_delivery.py::test_422_batch_is_dropped_counted_and_not_retried)."""
    with pytest.raises(InvalidItem, match=r"outside 1970-01-01 \.\. 9999-01-01 UTC"):
        encode_event(event(timestamp=ts), LIMITS)
    with pytest.raises(InvalidItem, match=r"outside 1970-01-01 \.\. 9999-01-01 UTC"):
        encode_feedback(feedback(score=1, timestamp=ts), LIMITS)


def test_encode_item_dispatches_on_kind() -> None:
    assert decode(encode_item(EVENT, event(), LIMITS))["event_id"] == "e1"
    assert decode(encode_item(FEEDBACK, feedback(score=0), LIMITS))["feedback_id"] == "f1"
    with pytest.raises(InvalidItem):
        encode_item("other", event(), LIMITS)


anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.binary(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.one_of(st.text(), st.floats()), max_size=3),
    st.datetimes(),
)


ids = st.from_regex(r"[A-Za-z0-9._:-]{1,12}", fullmatch=True)
texts = st.text(max_size=30)


def _plausible(name: str) -> st.SearchStrategy[Any]:
    by_name: dict[str, st.SearchStrategy[Any]] = {
        "event_id": ids,
        "feedback_id": ids,
        "trace_id": ids,
        "session_id": ids,
        "timestamp": st.one_of(st.floats(0, 2e9), st.datetimes(timezones=st.just(UTC))),
        "latency_ms": st.floats(0, 1e6),
        "prompt_tokens": st.integers(0, 10**6),
        "completion_tokens": st.integers(0, 10**6),
        "score": st.floats(-10, 10),
        "metadata": st.dictionaries(texts, st.one_of(texts, st.integers(), st.floats()), max_size=3),
    }
    plausible = by_name.get(name, texts)
    return plausible if name in ("event_id", "feedback_id") else st.one_of(st.none(), plausible)


@st.composite
def raw_items(draw: st.DrawFn, names: tuple[str, ...]) -> tuple[Any, ...]:
    """Plausible values for every field, and in half the examples one field replaced by anything at all."""
    values = [draw(_plausible(name)) for name in names]
    if draw(st.booleans()):
        values[draw(st.integers(0, len(names) - 1))] = draw(anything)
    return tuple(values)


@settings(max_examples=150, deadline=None)
@given(values=raw_items(EVENT_FIELDS))
def test_whatever_the_sdk_sends_the_collector_schema_accepts(values: tuple[Any, ...]) -> None:
    # The collector's own pydantic contract is the judge (tests may import it; the SDK may not).
    from monitor.schemas import EventBatch

    try:
        line = encode_event(values, LIMITS)
    except InvalidItem:
        return
    data = json.loads(line.decode("utf-8"), parse_constant=_no_constants)  # strict UTF-8 and JSON
    assert all(value is not None for value in data.values())
    assert not any("\x00" in text for text in _strings(data))
    EventBatch.model_validate_json(b'{"events":[' + line + b"]}")


@settings(max_examples=100, deadline=None)
@given(values=raw_items(FEEDBACK_FIELDS))
def test_whatever_feedback_the_sdk_sends_the_collector_schema_accepts(values: tuple[Any, ...]) -> None:
    from monitor.schemas import FeedbackBatch

    try:
        line = encode_feedback(values, LIMITS)
    except InvalidItem:
        return
    FeedbackBatch.model_validate_json(b'{"feedback":[' + line + b"]}")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _no_constants(name: str) -> None:
    raise AssertionError(f"{name} is not valid JSON")


def test_new_ids_are_uuid4_hex_and_distinct() -> None:
    import uuid

    from monitor.sdk.items import new_id

    ids = [new_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    for value in ids[:500]:
        parsed = uuid.UUID(hex=value)
        assert parsed.hex == value and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_ids_do_not_repeat_when_the_app_seeds_the_global_random() -> None:
    # Reproducible ML code seeds `random` (often per request); repeated ids would make the collector drop
    # every later event as a duplicate of the first.
    import random

    from monitor.sdk.items import new_id

    random.seed(7)
    first = new_id()
    random.seed(7)
    assert new_id() != first


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    import os

    from monitor.sdk.items import new_id

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write, new_id().encode())
        os._exit(0)
    os.close(write)
    parent_next = new_id()
    child_next = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child_next) == 32 and child_next != parent_next
