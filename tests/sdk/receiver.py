"""A real local HTTP collector stand-in for SDK tests.

It speaks the ingestion contract (POST /v1/events and /v1/feedback, gzip bodies, idempotent by
client id, `{"accepted": n, "duplicates": m}`) and can be told to answer 500, 503 + Retry-After,
422, to hang, or to go away entirely (connection refused) and come back on the same port.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None  # None: the contract's JSON for this status
    hang: bool = False  # block until `Receiver.release` is set (or 30 s pass)


@dataclass(frozen=True)
class Recorded:
    path: str
    headers: dict[str, str]  # lower-cased names
    raw: bytes  # as received on the wire
    body: bytes  # decompressed
    payload: Any  # parsed JSON (None if it did not parse)
    status: int  # what the receiver answered

    def items(self) -> list[dict[str, Any]]:
        if not isinstance(self.payload, dict):
            return []
        return self.payload.get("events") or self.payload.get("feedback") or []


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], receiver: Receiver) -> None:
        self.receiver = receiver
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real collector behind a proxy
    disable_nagle_algorithm = True  # headers and body go out in two writes; no 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        receiver = self.server.receiver
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        reply = receiver.next_reply()
        if reply.hang:
            receiver.release.wait(30)
        answer = receiver.record(self.path, dict(self.headers.items()), raw, body, payload, reply)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


class Receiver:
    def __init__(self) -> None:
        self.port = 0
        self.release = threading.Event()
        self.default = Reply()
        self._script: deque[Reply] = deque()
        self._cond = threading.Condition()
        self.requests: list[Recorded] = []
        self.stored: dict[str, dict[str, dict[str, Any]]] = {"events": {}, "feedback": {}}
        self.deliveries: dict[str, int] = {}  # client id -> times it arrived in a 200 batch
        self.arrivals = 0  # requests received, counted before any scripted hang
        self._server: _Server | None = None
        self.start()

    # ----- control -----

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Listen (again) on the same port as before, or a free one the first time."""
        self.release.clear()
        self._server = _Server(("127.0.0.1", self.port), self)
        self.port = self._server.server_address[1]
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def stop(self) -> None:
        """Stop listening and cut keep-alive connections: the next request gets 'connection refused'."""
        server, self._server = self._server, None
        if server is None:
            return
        self.release.set()
        server.shutdown()
        server.server_close()
        with server.connections_lock:
            for conn in list(server.connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, then with `default`."""
        with self._cond:
            self._script.extend(replies)

    def next_reply(self) -> Reply:
        with self._cond:
            self.arrivals += 1
            self._cond.notify_all()
            return self._script.popleft() if self._script else self.default

    # ----- recording -----

    def record(
        self, path: str, headers: dict[str, str], raw: bytes, body: bytes, payload: Any, reply: Reply
    ) -> bytes:
        rec = Recorded(path, {k.lower(): v for k, v in headers.items()}, raw, body, payload, reply.status)
        with self._cond:
            self.requests.append(rec)
            answer: dict[str, Any] = {"detail": "scripted failure"}
            if reply.status == 200:
                kind = path.rsplit("/", 1)[-1]
                key = "event_id" if kind == "events" else "feedback_id"
                accepted = duplicates = 0
                for item in rec.items():
                    item_id = item[key]
                    self.deliveries[item_id] = self.deliveries.get(item_id, 0) + 1
                    if item_id in self.stored[kind]:
                        duplicates += 1
                    else:
                        self.stored[kind][item_id] = item
                        accepted += 1
                answer = {"accepted": accepted, "duplicates": duplicates}
            self._cond.notify_all()
        return reply.body if reply.body is not None else json.dumps(answer).encode()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Block until `predicate()` holds (checked on every request), or `timeout` seconds pass."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    @property
    def events(self) -> dict[str, dict[str, Any]]:
        return self.stored["events"]

    @property
    def feedback(self) -> dict[str, dict[str, Any]]:
        return self.stored["feedback"]
