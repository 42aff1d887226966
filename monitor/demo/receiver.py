"""A webhook receiver on localhost for the demo: it verifies every delivery with the SDK's verifier."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from monitor.sdk import WebhookVerificationError, verify_webhook


@dataclass
class Received:
    secret: str = ""
    verified: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, Received]]:
    got = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                got.verified.append(verify_webhook(got.secret, dict(self.headers.items()), body))
                self.send_response(204)
            except WebhookVerificationError:
                got.rejected += 1
                self.send_response(400)
            self.end_headers()

        def log_message(self, *_: Any) -> None:  # keep the demo's terminal clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/driftloop", got
    finally:
        server.shutdown()
        server.server_close()
