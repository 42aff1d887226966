"""What the tracing helpers and the OpenAI wrapper need of a client: `log()` (see `Client.log`). A Protocol, so
neither imports `monitor.sdk.client` (which imports them) and the SDK's modules form no import cycle."""

from __future__ import annotations

from typing import Any, Protocol


class EventLog(Protocol):
    def log(self, *args: Any, **kwargs: Any) -> str: ...  # `Client.log`'s parameters
