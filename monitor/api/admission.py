"""Writes other than ingestion are admitted to the event loop one at a time.

The framework parses and validates a JSON or form body on the event loop before a route runs. One such body
costs milliseconds (a 56 KiB alert rule with 4,000 action parameters: 2-6 ms on these cores, ~30 ms on a busy
machine), which is harmless alone; a hostile admin sending them from many connections at once keeps the loop
busy with nothing else, and `/healthz` waited up to a second (issue #18, `python -m bench.faults.hostile_admin
--only JSON`). Admission bounds it at the mechanism, whatever the route or the body: a write waits, cheaply and
in order, until the one before it has been answered, so at most one write's parsing stands between a probe and
the loop. Admin writes are rare and short, so serialising them costs nothing a person notices; ingestion
(`/v1/events`, `/v1/feedback`, `/v1/traces`) parses its batches off the loop and is never held here, and
reads (GET, HEAD, OPTIONS) are never held either.

A write holds admission until its response starts or `hold_limit` seconds have passed, whichever comes first:
a long write (an erasure that deletes in batches) has long finished its parsing by then and must not stall the
writes behind it. The gate sits inside `SmallBodies`, so a body is buffered (and an oversized one refused)
before its request queues: a slow uploader never holds the gate.
"""

from __future__ import annotations

import asyncio
import weakref

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor.api.body_cap import INGEST_PATHS

READS = frozenset({"GET", "HEAD", "OPTIONS"})
HOLD_LIMIT_SECONDS = 1.0
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _gate() -> asyncio.Semaphore:
    # One gate per event loop: a semaphore belongs to the loop it is used on (test clients start new loops).
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = asyncio.Semaphore(1)
    return gate


class WriteAdmission:
    """ASGI middleware: non-ingest writes enter the app one at a time (see the module docstring)."""

    def __init__(self, app: ASGIApp, exempt: frozenset[str] = INGEST_PATHS,
                 hold_limit: float = HOLD_LIMIT_SECONDS) -> None:
        self.app, self.exempt, self.hold_limit = app, exempt, hold_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] in READS
                or scope["path"].rstrip("/") in self.exempt):
            await self.app(scope, receive, send)
            return
        gate = _gate()
        await gate.acquire()
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                gate.release()

        timer = asyncio.get_running_loop().call_later(self.hold_limit, release)

        async def send_then_release(message: Message) -> None:
            if message["type"] == "http.response.start":
                release()
            await send(message)

        try:
            await self.app(scope, receive, send_then_release)
        finally:
            timer.cancel()
            release()
