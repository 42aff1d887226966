"""A real HTTP receiver on 127.0.0.1 for webhook tests: scripted answers, every request recorded."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    hang: bool = False  # block until the test ends (the sender's timeout fires first)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """`port=0` picks a free port; `go_down()` / `come_back()` close and reopen it (same port, same record)."""

    def __init__(self, port: int = 0) -> None:
        self.script: list[Answer] = []
        self.requests: list[Received] = []
        self.statuses: list[int] = []  # the status answered to each request (0: hung up)
        self.lock = threading.Lock()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                      body))
                    answer = receiver.script.pop(0) if receiver.script else Answer()
                    receiver.statuses.append(0 if answer.hang else answer.status)
                if answer.hang:
                    receiver.release.wait(30)
                    return
                self.send_response(answer.status)
                for k, v in answer.headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *args: object) -> None:
                pass

        self._handler = Handler
        self.server = self._bind(port)
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread: threading.Thread | None = None

    def _bind(self, port: int) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer(("127.0.0.1", port), self._handler)
        server.daemon_threads = True
        return server

    def serve(self) -> None:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def go_down(self) -> None:
        """Stop answering: the port is closed, so senders get "connection refused"."""
        self.server.shutdown()
        self.server.server_close()

    def come_back(self) -> None:
        self.server = self._bind(self.port)
        self.serve()

    def answer(self, *answers: Answer | int) -> None:
        with self.lock:
            self.script.extend(a if isinstance(a, Answer) else Answer(a) for a in answers)

    def count(self) -> int:
        with self.lock:
            return len(self.requests)

    def verified(self, secret: str) -> list[dict]:  # type: ignore[type-arg]
        """Every request's payload, each checked with the standardwebhooks verifier (raises if one fails)."""
        with self.lock:
            return [Webhook(secret).verify(r.body, r.headers) for r in self.requests]


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.serve()
    try:
        yield r
    finally:
        r.release.set()
        r.server.shutdown()
        r.server.server_close()
