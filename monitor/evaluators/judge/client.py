"""One chat-completion call to an OpenAI-compatible judge, with retries, timeouts and a hard deadline.

Retries (tenacity, exponential backoff with jitter) cover what a retry can fix: connection errors, timeouts,
429 and 5xx. A 4xx other than 429 is the request's fault and is not retried, except one case: a server that
rejects ``response_format`` (older vLLM/Ollama, `driftloop serve-model` ignores it) is asked again without it,
and the client remembers, so the schema costs one failed call per process, not one per item. Every wait and
every request timeout is cut to what is left before ``deadline`` (a monotonic time), so a slow or hanging judge
can never hold a window longer than the deadline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from monitor.evaluators.judge.verdict import VERDICT_SCHEMA


class JudgeCallError(Exception):
    """The call failed (after retries); the message says why, without the API key."""


class DeadlineReached(JudgeCallError):
    """No time left before the window's deadline."""


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class _Retryable(Exception):
    pass


def chat_url(base_url: str) -> str:
    """Accepts http://host:8000, http://host:8000/v1 or the full /v1/chat/completions address."""
    u = base_url.rstrip("/")
    if u.endswith("/chat/completions"):
        return u
    return u + ("/chat/completions" if u.endswith("/v1") else "/v1/chat/completions")


class JudgeClient:
    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout_s: float = 30.0,
                 max_attempts: int = 3, max_tokens: int = 200, use_schema: bool = True,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("the judge URL must start with http:// or https://")
        self.url = chat_url(base_url)
        self.model = model
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.max_tokens = max_tokens
        self.schema_supported: bool | None = None if use_schema else False
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(headers=headers, transport=transport, follow_redirects=False)

    def set_api_key(self, api_key: str) -> None:
        self._http.headers["Authorization"] = f"Bearer {api_key}"

    def close(self) -> None:
        self._http.close()

    def _body(self, messages: list[dict[str, str]], with_schema: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": 0,
                                "max_tokens": self.max_tokens}
        if with_schema:
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "verdict", "strict": True, "schema": VERDICT_SCHEMA}}
        return body

    def _post(self, messages: list[dict[str, str]], deadline: float) -> Completion:
        left = deadline - time.monotonic()
        if left <= 0.05:
            raise DeadlineReached("the window's judge deadline was reached before this item")
        with_schema = self.schema_supported is not False
        started = time.monotonic()
        try:
            r = self._http.post(self.url, json=self._body(messages, with_schema),
                                timeout=httpx.Timeout(min(self.timeout_s, left)))
        except httpx.TimeoutException as exc:
            raise _Retryable(f"judge timed out after {min(self.timeout_s, left):.1f}s") from exc
        except httpx.HTTPError as exc:
            raise _Retryable(f"judge unreachable: {type(exc).__name__}: {str(exc)[:120]}") from exc
        if with_schema and r.status_code in (400, 422) and "response_format" in r.text:
            self.schema_supported = False  # remember: this server takes no schema
            return self._post(messages, deadline)
        if r.status_code == 429 or r.status_code >= 500:
            raise _Retryable(f"judge answered HTTP {r.status_code}: {r.text[:120]!r}")
        if r.status_code != 200:
            raise JudgeCallError(f"judge refused the request: HTTP {r.status_code}: {r.text[:200]!r}")
        try:
            body = r.json()
            text = body["choices"][0]["message"]["content"]
            usage = body.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError):
            raise JudgeCallError(f"judge answered HTTP 200 but not a chat completion: {r.text[:120]!r}") from None
        if with_schema:
            self.schema_supported = True
        return Completion(str(text or ""), int(usage.get("prompt_tokens") or 0),
                          int(usage.get("completion_tokens") or 0), time.monotonic() - started)

    def complete(self, messages: list[dict[str, str]], *, deadline: float) -> Completion:
        """One completion; raises JudgeCallError (DeadlineReached when time ran out)."""

        def wait(state: RetryCallState) -> float:
            base = wait_random_exponential(multiplier=0.5, max=8.0)(state)
            return max(0.0, min(base, deadline - time.monotonic() - 0.05))

        try:
            for attempt in Retrying(stop=stop_after_attempt(self.max_attempts), wait=wait,
                                    retry=retry_if_exception(lambda e: isinstance(e, _Retryable)
                                                             and deadline - time.monotonic() > 0.1),
                                    reraise=True):
                with attempt:
                    return self._post(messages, deadline)
        except _Retryable as exc:
            raise JudgeCallError(f"{exc} (gave up after retries)") from None
        raise JudgeCallError("unreachable")  # pragma: no cover - Retrying either returns or raises
