"""`wrap_openai`: log every `chat.completions.create` call of an OpenAI-shaped client.

The proxy forwards everything to the wrapped client; only `chat.completions.create` is intercepted,
and it returns the original result object (or a pass-through view of a stream) and re-raises the
original exceptions. Works with sync and async clients and with `stream=True`. Nothing from the
`openai` package is imported: any object with the same shape works.

Extra per-call fields go in a `driftloop=` keyword, which is removed before the real call:
`create(model=..., messages=..., driftloop={"event_id": my_id, "session_id": sid, "metadata": {...}})`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from monitor.sdk.tracing import describe_exception

if TYPE_CHECKING:
    from monitor.sdk.protocol import EventLog

logger = logging.getLogger("driftloop.sdk")

T = TypeVar("T")
_MESSAGES_BUDGET = 32 * 1024  # bytes of the conversation kept in metadata (the collector allows 64 KiB)
_PASSED_FIELDS = (
    "event_id",
    "trace_id",
    "session_id",
    "prompt_template_id",
    "prompt_template_version",
    "model_version",
)
_REQUEST_PARAMS = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "n", "seed", "stream")


def wrap_openai(openai_client: T, client: EventLog) -> T:
    """Return a proxy of `openai_client` whose chat completions are logged to `client`."""
    return _ClientProxy(openai_client, client)  # type: ignore[return-value]


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _text_of(content: Any) -> str | None:
    """Message content as text: a str, or the text parts of a multi-part content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [t for t in (_get(part, "text") for part in content) if isinstance(t, str)]
        return "\n".join(texts) if texts else None
    return None


def _plain(message: Any) -> Any:
    if isinstance(message, Mapping):
        return dict(message)
    dump = getattr(message, "model_dump", None)
    if callable(dump):
        return dump()
    return {"role": _get(message, "role"), "content": _get(message, "content")}


def _fit_messages(messages: list[Any], budget: int) -> tuple[list[Any], int]:
    """Keep the most recent messages that fit in `budget` JSON bytes; returns (kept, dropped_count)."""
    kept: list[Any] = []
    size = 2
    for message in reversed(messages):
        cost = len(json.dumps(message, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass")) + 2
        if size + cost > budget:
            break
        kept.append(message)
        size += cost
    kept.reverse()
    return kept, len(messages) - len(kept)


class _Call:
    """What one intercepted call knows so far; logs itself once."""

    def __init__(self, client: EventLog, kwargs: Mapping[str, Any], extra: Mapping[str, Any]) -> None:
        self.client = client
        self.kwargs = kwargs
        self.extra = extra
        self.timestamp = time.time()
        self.start = time.perf_counter()
        self.first_chunk_ms: float | None = None
        self.parts: list[str] = []
        self.model: Any = None
        self.usage: Any = None
        self.done = False

    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        if self.done:
            return
        self.done = True
        latency_ms = (time.perf_counter() - self.start) * 1000.0
        try:
            self._log(result, error, latency_ms)
        except Exception:
            logger.exception("driftloop could not record an OpenAI call; the call is not affected")

    def _log(self, result: Any, error: BaseException | None, latency_ms: float) -> None:
        messages = self.kwargs.get("messages")
        message_list = [_plain(m) for m in messages] if isinstance(messages, list | tuple) else []
        prompt = None
        for message in reversed(message_list):
            if _get(message, "role") == "user":
                prompt = _text_of(_get(message, "content"))
                break
        kept, dropped = _fit_messages(message_list, _MESSAGES_BUDGET)
        metadata: dict[str, Any] = {"provider": "openai", "messages": kept}
        if dropped:
            metadata["messages_dropped"] = dropped
        params = {k: self.kwargs[k] for k in _REQUEST_PARAMS if k in self.kwargs}
        if params:
            metadata["params"] = params
        if self.first_chunk_ms is not None:
            metadata["time_to_first_chunk_ms"] = self.first_chunk_ms
        user_metadata = self.extra.get("metadata")
        if isinstance(user_metadata, Mapping):
            metadata.update(user_metadata)

        response = "".join(self.parts) if self.parts else None
        model, usage = self.model, self.usage
        if result is not None:
            choices = _get(result, "choices")
            if choices:
                response = _text_of(_get(_get(choices[0], "message"), "content"))
            model = _get(result, "model") or model
            usage = _get(result, "usage") or usage
        model = model or self.kwargs.get("model")
        fields = {name: self.extra.get(name) for name in _PASSED_FIELDS}
        self.client.log(
            prompt,
            response,
            model=model if isinstance(model, str) else None,
            latency_ms=latency_ms,
            prompt_tokens=_get(usage, "prompt_tokens") if usage is not None else None,
            completion_tokens=_get(usage, "completion_tokens") if usage is not None else None,
            error=describe_exception(error) if error is not None else None,
            metadata=metadata,
            **fields,
        )

    def on_chunk(self, chunk: Any) -> None:
        try:
            if self.first_chunk_ms is None:
                self.first_chunk_ms = (time.perf_counter() - self.start) * 1000.0
            choices = _get(chunk, "choices")
            if choices:
                text = _get(_get(choices[0], "delta"), "content")
                if isinstance(text, str):
                    self.parts.append(text)
            self.model = _get(chunk, "model") or self.model
            self.usage = _get(chunk, "usage") or self.usage
        except Exception:
            logger.debug("driftloop could not read a stream chunk", exc_info=True)


class _Forwarding:
    """Forwards every attribute it does not define to the wrapped object."""

    def __init__(self, target: Any, client: EventLog) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_dl_client", client)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._target, name, value)

    def __repr__(self) -> str:
        return f"<driftloop-wrapped {self._target!r}>"


class _ClientProxy(_Forwarding):
    @property
    def chat(self) -> Any:
        return _ChatProxy(self._target.chat, self._dl_client)


class _ChatProxy(_Forwarding):
    @property
    def completions(self) -> Any:
        return _CompletionsProxy(self._target.completions, self._dl_client)


class _CompletionsProxy(_Forwarding):
    def create(self, *args: Any, **kwargs: Any) -> Any:
        extra = kwargs.pop("driftloop", None)
        call = _Call(self._dl_client, kwargs, extra if isinstance(extra, Mapping) else {})
        try:
            result = self._target.create(*args, **kwargs)
        except BaseException as exc:
            call.finish(error=exc)
            raise
        if hasattr(result, "__await__"):  # an async client: time the call until it is awaited
            return _await_and_log(result, call, bool(kwargs.get("stream")))
        if kwargs.get("stream"):
            return _StreamProxy(result, call)
        call.finish(result)
        return result


async def _await_and_log(awaitable: Any, call: _Call, stream: bool) -> Any:
    try:
        result = await awaitable
    except BaseException as exc:
        call.finish(error=exc)
        raise
    if stream:
        return _AsyncStreamProxy(result, call)
    call.finish(result)
    return result


class _StreamProxy:
    """Yields the original chunks unchanged; logs the call when the stream ends, fails or is closed."""

    def __init__(self, stream: Any, call: _Call) -> None:
        self._stream = stream
        self._call = call
        self._iterator: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __iter__(self) -> _StreamProxy:
        return self

    def __next__(self) -> Any:
        if self._iterator is None:
            self._iterator = iter(self._stream)
        try:
            chunk = next(self._iterator)
        except StopIteration:
            self._call.finish()
            raise
        except BaseException as exc:
            self._call.finish(error=exc)
            raise
        self._call.on_chunk(chunk)
        return chunk

    def close(self) -> Any:
        self._call.finish()
        close = getattr(self._stream, "close", None)
        return close() if callable(close) else None

    def __enter__(self) -> _StreamProxy:
        enter = getattr(self._stream, "__enter__", None)
        if callable(enter):
            enter()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        self._call.finish(error=exc_info[1])
        exit_ = getattr(self._stream, "__exit__", None)
        return exit_(*exc_info) if callable(exit_) else None


class _AsyncStreamProxy:
    """The async twin of `_StreamProxy`."""

    def __init__(self, stream: Any, call: _Call) -> None:
        self._stream = stream
        self._call = call
        self._iterator: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __aiter__(self) -> _AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        if self._iterator is None:
            self._iterator = self._stream.__aiter__()
        try:
            chunk = await self._iterator.__anext__()
        except StopAsyncIteration:
            self._call.finish()
            raise
        except BaseException as exc:
            self._call.finish(error=exc)
            raise
        self._call.on_chunk(chunk)
        return chunk

    async def close(self) -> Any:
        self._call.finish()
        close = getattr(self._stream, "close", None)
        return await close() if callable(close) else None

    async def __aenter__(self) -> _AsyncStreamProxy:
        enter = getattr(self._stream, "__aenter__", None)
        if callable(enter):
            await enter()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        self._call.finish(error=exc_info[1])
        exit_ = getattr(self._stream, "__aexit__", None)
        return await exit_(*exc_info) if callable(exit_) else None
