"""Refuse requests whose headers are too large with 431, before any route, dependency or body read runs.

An unauthenticated client could send megabytes of headers (the server parses and keeps them all, and every
middleware copies them); the collector needs a few hundred bytes. Two layers, because neither alone is enough:
- the HTTP server: `driftloop serve` runs uvicorn's h11 protocol with `h11_max_incomplete_event_size` set just
  above this limit, so an 8 MB header is cut off while it arrives instead of being buffered whole
  (httptools, uvicorn's other protocol, has no limit);
- this middleware: whatever server runs the app (another ASGI server, a test client), a request whose headers
  add up to more than `DRIFTLOOP_MAX_HEADER_BYTES` gets a clear 431 and reaches nothing else.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

# Room for the request line (method, target up to 8 KiB, version) on top of the headers, for the server limit.
REQUEST_LINE_ALLOWANCE = 8 * 1024


def header_bytes(scope: Scope) -> int:
    """Bytes of the request's headers as sent: each `name: value` line with its CRLF."""
    return sum(len(name) + len(value) + 4 for name, value in scope.get("headers", ()))


def server_limit(max_header_bytes: int) -> int:
    """What to hand the HTTP server (h11's `max_incomplete_event_size`): the request line and the headers."""
    return max_header_bytes + REQUEST_LINE_ALLOWANCE


class HeaderLimitMiddleware:
    def __init__(self, app: ASGIApp, max_header_bytes: int) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            size = header_bytes(scope)
            if size > self.max_header_bytes:
                await self._refuse(scope, send, size)
                return
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, send: Send, size: int) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1009})
            return
        body = json.dumps({"detail": f"request headers are {size} bytes; the limit is {self.max_header_bytes} "
                                     "(DRIFTLOOP_MAX_HEADER_BYTES)"}).encode()
        await send({"type": "http.response.start", "status": 431,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
