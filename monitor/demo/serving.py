"""Servers the demo runs inside its own process: an ASGI app under uvicorn in a thread, on a free port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from monitor.settings import Settings


@contextmanager
def serving_in_thread(app: Any, name: str, *, start_timeout: float = 30.0) -> Iterator[str]:
    """Serve `app` on a free loopback port until the block ends; yields its base URL."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError(f"{name} did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def running_collector(settings: Settings) -> Iterator[str]:
    """The real collector app (ingestion, read API, the loop's routes, the UI) for the demo's database."""
    from monitor.api.app import create_app

    with serving_in_thread(create_app(settings), "demo-collector") as url:
        yield url
