"""`Client.trace`: timing with an injected clock, error capture with unchanged re-raise, decorator forms."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from monitor.sdk import Client, current_trace
from tests.sdk.receiver import Receiver

MakeClient = Callable[..., Client]


def fake_clock(*readings: float) -> Callable[[], float]:
    values: Iterator[float] = iter(readings)
    return lambda: next(values)


def test_context_manager_times_the_block_and_logs_fields(receiver: Receiver, make_client: MakeClient) -> None:
    client = make_client(receiver.url)
    trace = client.trace("Why is the sky blue?", model="m", session_id="s1", metadata={"route": "faq"})
    trace.clock = fake_clock(100.0, 100.25)
    with trace as t:
        assert current_trace() is t
        t.response = "Rayleigh scattering."
        t.prompt_tokens, t.completion_tokens = 7, 3
        t.metadata = {**(t.metadata or {}), "cached": False}
    assert current_trace() is None
    assert t.latency_ms == pytest.approx(250.0)
    assert client.flush(5)
    event = receiver.events[t.event_id]
    assert event["latency_ms"] == pytest.approx(250.0)
    assert event["prompt"] == "Why is the sky blue?" and event["response"] == "Rayleigh scattering."
    assert (event["prompt_tokens"], event["completion_tokens"]) == (7, 3)
    assert event["session_id"] == "s1" and event["model"] == "m"
    assert event["metadata"] == {"route": "faq", "cached": False}
    assert "error" not in event


def test_real_clock_latency_is_positive(receiver: Receiver, make_client: MakeClient) -> None:
    client = make_client(receiver.url)
    with client.trace("p") as t:
        sum(range(10_000))
    assert t.latency_ms is not None and t.latency_ms > 0


def test_exception_is_recorded_and_reraised_unchanged(receiver: Receiver, make_client: MakeClient) -> None:
    client = make_client(receiver.url)
    boom = ValueError("model exploded")
    trace = client.trace("p")
    trace.clock = fake_clock(1.0, 1.5)
    with pytest.raises(ValueError) as caught, trace:
        raise boom
    assert caught.value is boom  # the very same object, traceback intact
    assert caught.value.__traceback__ is not None
    assert client.flush(5)
    event = receiver.events[trace.event_id]
    assert event["error"] == "ValueError: model exploded"
    assert event["latency_ms"] == pytest.approx(500.0)


def test_error_text_is_cut_to_the_collectors_limit(receiver: Receiver, make_client: MakeClient) -> None:
    client = make_client(receiver.url)
    with pytest.raises(RuntimeError), client.trace("p") as t:
        raise RuntimeError("x" * 20_000)
    assert client.flush(5)
    assert len(receiver.events[t.event_id]["error"]) == 8192


def test_decorator_logs_each_call_separately(receiver: Receiver, make_client: MakeClient) -> None:
    client = make_client(receiver.url)

    @client.trace(model="m", metadata={"fn": "answer"})
    def answer(question: str, *, style: str = "short") -> str:
        trace = current_trace()
        assert trace is not None
        trace.completion_tokens = len(question)
        return f"{style}: {question.upper()}"

    assert answer("hi") == "short: HI"
    assert answer("there", style="long") == "long: THERE"
    assert answer.__name__ == "answer"
    assert client.flush(5)
    events = list(receiver.events.values())
    assert [(e["prompt"], e["response"], e["completion_tokens"]) for e in events] == [
        ("hi", "short: HI", 2),
        ("there", "long: THERE", 5),
    ]
    assert events[0]["event_id"] != events[1]["event_id"]
    assert all(e["metadata"] == {"fn": "answer"} and e["model"] == "m" for e in events)


def test_decorator_reraises_and_records(receiver: Receiver, make_client: MakeClient) -> None:
    client = make_client(receiver.url)

    @client.trace()
    def fails(prompt: str) -> str:
        raise KeyError(prompt)

    with pytest.raises(KeyError):
        fails(prompt="k")
    assert client.flush(5)
    [event] = receiver.events.values()
    assert event["prompt"] == "k" and event["error"] == "KeyError: 'k'"


def test_async_decorator_and_async_with(receiver: Receiver, make_client: MakeClient) -> None:
    client = make_client(receiver.url)

    @client.trace(model="async-m")
    async def answer(prompt: str) -> str:
        await asyncio.sleep(0)
        return prompt[::-1]

    async def main() -> str:
        async with client.trace("ctx") as t:
            t.response = await answer("abc")
        return t.event_id

    ctx_id = asyncio.run(main())
    assert client.flush(5)
    assert receiver.events[ctx_id]["response"] == "cba"
    decorated = [e for e in receiver.events.values() if e.get("model") == "async-m"]
    assert [(e["prompt"], e["response"]) for e in decorated] == [("abc", "cba")]
