"""`wrap_openai` against a small stand-in shaped like `openai.OpenAI` / `openai.AsyncOpenAI`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from monitor.sdk import Client, wrap_openai
from tests.sdk.receiver import Receiver

MakeClient = Callable[..., Client]


# ----- the stand-in (attribute shapes follow the OpenAI Python client's response objects) -----


@dataclass
class Message:
    role: str
    content: str | None


@dataclass
class Choice:
    message: Message
    index: int = 0
    finish_reason: str = "stop"


@dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass
class ChatCompletion:
    id: str
    model: str
    choices: list[Choice]
    usage: Usage | None


@dataclass
class Delta:
    content: str | None


@dataclass
class ChunkChoice:
    delta: Delta
    index: int = 0


@dataclass
class Chunk:
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class RateLimitError(Exception):
    pass


@dataclass
class FakeCompletions:
    calls: list[dict[str, Any]] = field(default_factory=list)
    fail_with: Exception | None = None

    def create(self, *, model: str, messages: list[dict[str, Any]], stream: bool = False, **kw: Any) -> Any:
        self.calls.append({"model": model, "messages": messages, "stream": stream, **kw})
        if self.fail_with is not None:
            raise self.fail_with
        text = "echo: " + str(messages[-1]["content"])
        if stream:
            return FakeStream(model, text)
        usage = Usage(prompt_tokens=11, completion_tokens=4, total_tokens=15)
        return ChatCompletion("cmpl-1", model + "-2024", [Choice(Message("assistant", text))], usage)


class FakeStream:
    def __init__(self, model: str, text: str) -> None:
        self.model, self.text, self.closed = model, text, False
        self.response = "raw-http-response"

    def __iter__(self) -> Iterator[Chunk]:
        for word in self.text.split(" "):
            yield Chunk(self.model, [ChunkChoice(Delta(word + " "))])
        yield Chunk(self.model, [], usage=Usage(3, 2, 5))

    def close(self) -> None:
        self.closed = True


class FakeChat:
    def __init__(self) -> None:
        self.completions = FakeCompletions()


class FakeModels:
    def list(self) -> list[str]:
        return ["gpt-x"]


class FakeOpenAI:
    def __init__(self) -> None:
        self.chat = FakeChat()
        self.models = FakeModels()
        self.api_key = "sk-fake"


class FakeAsyncCompletions:
    def create(self, *, model: str, messages: list[dict[str, Any]], stream: bool = False) -> Any:
        # Like the real async client: a plain function returning a coroutine.
        async def run() -> Any:
            await asyncio.sleep(0)
            if messages[-1]["content"] == "fail":
                raise RateLimitError("slow down")
            if stream:
                return FakeAsyncStream(model)
            return ChatCompletion(
                "a-1", model, [Choice(Message("assistant", "async answer"))], Usage(2, 2, 4)
            )

        return run()


class FakeAsyncStream:
    def __init__(self, model: str) -> None:
        self.model = model

    async def __aiter__(self) -> AsyncIterator[Chunk]:
        for word in ("a", "b", "c"):
            yield Chunk(self.model, [ChunkChoice(Delta(word))])


class FakeAsyncOpenAI:
    def __init__(self) -> None:
        self.chat = type("Chat", (), {"completions": FakeAsyncCompletions()})()


MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "first question"},
    {"role": "assistant", "content": "first answer"},
    {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "text", "text": "question"}]},
]


# ----- tests -----


def test_create_returns_the_original_result_and_logs_the_call(
    receiver: Receiver, make_client: MakeClient
) -> None:
    openai = FakeOpenAI()
    client = make_client(receiver.url)
    wrapped = wrap_openai(openai, client)
    result = wrapped.chat.completions.create(
        model="gpt-x",
        messages=MESSAGES,
        temperature=0.2,
        driftloop={"event_id": "call-1", "session_id": "s9"},
    )
    assert isinstance(result, ChatCompletion) and result.id == "cmpl-1"
    assert "driftloop" not in openai.chat.completions.calls[0]  # our keyword never reaches the client
    assert openai.chat.completions.calls[0]["temperature"] == 0.2
    assert client.flush(5)
    event = receiver.events["call-1"]
    assert event["prompt"] == "second\nquestion"  # the last user message, text parts joined
    assert event["response"] == result.choices[0].message.content
    assert event["model"] == "gpt-x-2024"  # what the API says it used
    assert (event["prompt_tokens"], event["completion_tokens"]) == (11, 4)
    assert event["session_id"] == "s9"
    assert event["latency_ms"] >= 0 and "error" not in event
    assert event["metadata"]["messages"] == MESSAGES
    assert event["metadata"]["params"] == {"temperature": 0.2}


def test_errors_are_reraised_unchanged_and_logged(receiver: Receiver, make_client: MakeClient) -> None:
    openai = FakeOpenAI()
    boom = RateLimitError("429 from upstream")
    openai.chat.completions.fail_with = boom
    client = make_client(receiver.url)
    with pytest.raises(RateLimitError) as caught:
        client.wrap_openai(openai).chat.completions.create(
            model="gpt-x", messages=MESSAGES[:2], driftloop={"event_id": "failed-1"}
        )
    assert caught.value is boom
    assert client.flush(5)
    event = receiver.events["failed-1"]
    assert event["error"] == "RateLimitError: 429 from upstream"
    assert event["prompt"] == "first question" and event["model"] == "gpt-x"
    assert "response" not in event


def test_everything_else_passes_through(receiver: Receiver, make_client: MakeClient) -> None:
    openai = FakeOpenAI()
    wrapped = wrap_openai(openai, make_client(receiver.url))
    assert wrapped.models.list() == ["gpt-x"]
    assert wrapped.api_key == "sk-fake"
    wrapped.api_key = "sk-new"
    assert openai.api_key == "sk-new"


def test_streaming_yields_original_chunks_and_logs_at_the_end(
    receiver: Receiver, make_client: MakeClient
) -> None:
    openai = FakeOpenAI()
    client = make_client(receiver.url)
    stream = wrap_openai(openai, client).chat.completions.create(
        model="gpt-x", messages=MESSAGES[:2], stream=True, driftloop={"event_id": "stream-1"}
    )
    assert stream.response == "raw-http-response"  # attributes of the real stream stay reachable
    chunks = list(stream)
    assert [c.choices[0].delta.content for c in chunks if c.choices] == ["echo: ", "first ", "question "]
    assert client.flush(5)
    event = receiver.events["stream-1"]
    assert event["response"] == "echo: first question "
    assert (event["prompt_tokens"], event["completion_tokens"]) == (3, 2)
    assert event["metadata"]["time_to_first_chunk_ms"] <= event["latency_ms"]


def test_closing_a_stream_early_still_logs_once(receiver: Receiver, make_client: MakeClient) -> None:
    openai = FakeOpenAI()
    client = make_client(receiver.url)
    stream = wrap_openai(openai, client).chat.completions.create(
        model="gpt-x", messages=MESSAGES[:2], stream=True, driftloop={"event_id": "early"}
    )
    with stream as s:
        next(iter(s))
    stream.close()
    assert client.flush(5)
    assert receiver.events["early"]["response"] == "echo: "
    assert receiver.deliveries["early"] == 1


def test_async_client(receiver: Receiver, make_client: MakeClient) -> None:
    client = make_client(receiver.url)
    wrapped = wrap_openai(FakeAsyncOpenAI(), client)

    async def main() -> tuple[Any, str]:
        result = await wrapped.chat.completions.create(
            model="m-async", messages=[{"role": "user", "content": "hi"}], driftloop={"event_id": "async-1"}
        )
        with pytest.raises(RateLimitError):
            await wrapped.chat.completions.create(
                model="m-async",
                messages=[{"role": "user", "content": "fail"}],
                driftloop={"event_id": "async-2"},
            )
        stream = await wrapped.chat.completions.create(
            model="m-async",
            messages=[{"role": "user", "content": "s"}],
            stream=True,
            driftloop={"event_id": "async-3"},
        )
        text = "".join([chunk.choices[0].delta.content async for chunk in stream])
        return result, text

    result, text = asyncio.run(main())
    assert result.choices[0].message.content == "async answer" and text == "abc"
    assert client.flush(5)
    assert receiver.events["async-1"]["response"] == "async answer"
    assert receiver.events["async-2"]["error"] == "RateLimitError: slow down"
    assert receiver.events["async-3"]["response"] == "abc"


def test_long_conversations_are_trimmed_to_fit_metadata(receiver: Receiver, make_client: MakeClient) -> None:
    client = make_client(receiver.url)
    history = [
        {"role": "user" if i % 2 else "assistant", "content": f"{i} " + "x" * 2000} for i in range(100)
    ]
    wrap_openai(FakeOpenAI(), client).chat.completions.create(
        model="gpt-x", messages=history, driftloop={"event_id": "long"}
    )
    assert client.flush(5)
    metadata = receiver.events["long"]["metadata"]  # delivered, not dropped as too large
    kept = metadata["messages"]
    assert kept == history[-len(kept) :] and metadata["messages_dropped"] == 100 - len(kept) > 0
