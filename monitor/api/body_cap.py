"""Small bodies for everything but ingestion: 64 KiB, refused with a 413 that names the limit.

Only the ingest routes need large bodies (batches of events, OTLP exports: `max_body_bytes`, 16 MiB by
default). Every other route - admin writes, alert-rule files, UI forms - is parsed in ways that cost time on
the event loop or a worker (JSON and form parsing by the framework, YAML), so its input is kept small: a rule
file or a form of 64 KiB is already far beyond any real one. Checked before the route runs: from Content-Length, else
while the body streams in (chunked uploads), buffering at most the limit.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SMALL_BODY_BYTES = 64 * 1024
# The routes whose bodies are batches; they keep `max_body_bytes` (checked by the routes themselves).
INGEST_PATHS = frozenset({"/v1/events", "/v1/feedback", "/v1/traces"})


def too_large(limit: int, size: int | None = None) -> str:
    said = f"request body is {size} bytes; " if size is not None else "request body exceeds the limit; "
    return said + f"the limit for this route is {limit} bytes ({limit // 1024} KiB)"


class SmallBodies:
    """ASGI middleware: bodies of non-ingest routes above `limit` bytes get 413 (JSON `detail`)."""

    def __init__(self, app: ASGIApp, limit: int = SMALL_BODY_BYTES, exempt: frozenset[str] = INGEST_PATHS) -> None:
        self.app, self.limit, self.exempt = app, limit, exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") in self.exempt:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send, too_large(self.limit, int(declared)))
            return
        # Read the (small) body here, before the app runs: an over-long one is answered before any route,
        # middleware or parser has started on it, and the app gets the buffered body replayed.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                await self._refuse(send, too_large(self.limit))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([whole], receive), send)

    @staticmethod
    async def _refuse(send: Send, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()  # after the body: wait for the disconnect, as the server would

    return replayed
