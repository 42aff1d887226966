"""`Trace`: time one LLM call, capture its error, and log it on exit.

    with client.trace(prompt, model="m") as t:       # context manager (also `async with`)
        t.response = call_model(prompt)
        t.prompt_tokens, t.completion_tokens = 12, 40

    @client.trace(model="m")                          # decorator (sync or async functions)
    def answer(prompt: str) -> str: ...

Exceptions from the app's code are recorded in `error` and re-raised unchanged; the SDK's own
failures are logged and swallowed.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from monitor.sdk.items import new_id

if TYPE_CHECKING:
    from types import TracebackType

    from monitor.sdk.protocol import EventLog

logger = logging.getLogger("driftloop.sdk")

F = TypeVar("F", bound=Callable[..., Any])
_MAX_ERROR_CHARS = 8192  # the collector's limit for `error`
_current: contextvars.ContextVar[Trace | None] = contextvars.ContextVar("driftloop_trace", default=None)


def current_trace() -> Trace | None:
    """The innermost active `Trace` (e.g. inside a decorated function), to set response/tokens on it."""
    return _current.get()


def describe_exception(exc: BaseException) -> str:
    """`Type: message`, cut to the collector's limit; never raises (some exceptions' str() does)."""
    try:
        text = f"{type(exc).__qualname__}: {exc}"
    except Exception:
        text = type(exc).__qualname__
    return text[:_MAX_ERROR_CHARS]


class Trace:
    """A handle for one call. Set `response`, `prompt_tokens`, `completion_tokens`, `metadata`, ... on it."""

    _FIELDS = (
        "prompt",
        "model",
        "model_version",
        "trace_id",
        "session_id",
        "prompt_template_id",
        "prompt_template_version",
    )

    def __init__(
        self,
        client: EventLog,
        *,
        prompt: str | None = None,
        model: str | None = None,
        model_version: str | None = None,
        trace_id: str | None = None,
        session_id: str | None = None,
        prompt_template_id: str | None = None,
        prompt_template_version: str | None = None,
        metadata: dict[str, Any] | None = None,
        event_id: str | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.client = client
        self.clock = clock  # injectable so tests can check latency without sleeping
        self.event_id: str = event_id or new_id()  # known up front, e.g. to attach feedback later
        self.prompt = prompt
        self.model = model
        self.model_version = model_version
        self.trace_id = trace_id
        self.session_id = session_id
        self.prompt_template_id = prompt_template_id
        self.prompt_template_version = prompt_template_version
        self.metadata: dict[str, Any] | None = metadata
        self.response: str | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.error: str | None = None
        self.latency_ms: float | None = None
        self.timestamp: float | None = None
        self._start: float | None = None
        self._token: contextvars.Token[Trace | None] | None = None

    # ----- context manager -----

    def __enter__(self) -> Trace:
        try:
            self.timestamp = time.time()
            self._token = _current.set(self)
        except Exception:
            logger.exception("driftloop trace failed to start; the call is not affected")
        self._start = self.clock()  # last, so set-up cost is not counted as latency
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Returning None (falsy) lets the app's exception propagate unchanged.
        end = self.clock()
        try:
            if self._start is not None:
                self.latency_ms = max(0.0, (end - self._start) * 1000.0)
            if exc is not None and self.error is None:
                self.error = describe_exception(exc)
            if self._token is not None:
                _current.reset(self._token)
                self._token = None
            self._log()
        except Exception:
            logger.exception("driftloop trace failed to record a call; the call is not affected")

    async def __aenter__(self) -> Trace:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def _log(self) -> None:
        self.client.log(
            self.prompt,
            self.response,
            model=self.model,
            model_version=self.model_version,
            latency_ms=self.latency_ms,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            error=self.error,
            trace_id=self.trace_id,
            session_id=self.session_id,
            prompt_template_id=self.prompt_template_id,
            prompt_template_version=self.prompt_template_version,
            metadata=self.metadata,
            event_id=self.event_id,
            timestamp=self.timestamp,
        )

    # ----- decorator -----

    def _fresh(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Trace:
        """A per-call copy: a decorated function is called many times, each call is its own event."""
        fresh = Trace(
            self.client,
            metadata=dict(self.metadata) if self.metadata else None,
            event_id=None,
            clock=self.clock,
            **{name: getattr(self, name) for name in self._FIELDS},
        )
        if fresh.prompt is None:
            candidate = kwargs.get("prompt")
            if not isinstance(candidate, str):
                candidate = next((a for a in args if isinstance(a, str)), None)
            fresh.prompt = candidate
        return fresh

    def __call__(self, fn: F) -> F:
        """Decorate `fn`: each call is timed and logged; a str return value becomes the response.

        The prompt is the trace's own, else a `prompt=` keyword argument, else the first str argument.
        Inside `fn`, `current_trace()` returns the handle for setting tokens or metadata.
        """
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                trace = self._safe_fresh(args, kwargs)
                if trace is None:
                    return await cast(Callable[..., Awaitable[Any]], fn)(*args, **kwargs)
                async with trace:
                    result = await fn(*args, **kwargs)
                    if trace.response is None and isinstance(result, str):
                        trace.response = result
                    return result

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            trace = self._safe_fresh(args, kwargs)
            if trace is None:
                return fn(*args, **kwargs)
            with trace:
                result = fn(*args, **kwargs)
                if trace.response is None and isinstance(result, str):
                    trace.response = result
                return result

        return cast(F, wrapper)

    def _safe_fresh(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Trace | None:
        try:
            return self._fresh(args, kwargs)
        except Exception:
            logger.exception("driftloop trace failed to start; the call is not affected")
            return None
