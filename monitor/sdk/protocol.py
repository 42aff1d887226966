"""What the tracing helpers and the OpenAI wrapper need of a client: `log()`. A Protocol, so neither imports
`monitor.sdk.client` (which imports them) and the SDK's modules form no import cycle."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class EventLog(Protocol):
    def log(
        self,
        prompt: str | None = None,
        response: str | None = None,
        *,
        model: str | None = None,
        model_version: str | None = None,
        latency_ms: float | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        error: str | None = None,
        trace_id: str | None = None,
        session_id: str | None = None,
        prompt_template_id: str | None = None,
        prompt_template_version: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        event_id: str | None = None,
        timestamp: float | str | Any | None = None,
    ) -> str: ...
