from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.sdk import Client, RetryPolicy
from tests.sdk.receiver import Receiver

# Retries in tests wait through an injected sleep (recorded, instant), never the wall clock.
FAST_RETRY = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_cap=0.05, max_retry_after=60.0)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.stop()


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., Client]]:
    """Clients that talk to a test receiver, spool under tmp_path, and are closed after the test."""
    made: list[Client] = []

    def make(url: str, **overrides: Any) -> Client:
        options: dict[str, Any] = {
            "spool_dir": tmp_path / "spool",
            "retry": FAST_RETRY,
            "flush_interval": 0.05,
            "_sleep": lambda seconds: None,
            "shutdown_timeout": 1.0,
        }
        options.update(overrides)
        client = Client(url, "test-key", **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close(timeout=1.0)
