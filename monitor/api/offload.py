"""Blocking work of `async def` routes runs in a worker thread, a bounded number at a time.

An `async def` route runs on the event loop, so CPU-heavy work inside it (parsing a YAML file, inflating a
body, validating a large document) stalls every other request, `/healthz` included. Such work goes through
`run_blocking`, which runs it in a thread under a named `anyio.CapacityLimiter`: the `admin` lane admits one
job at a time, so parallel hostile admin requests queue behind each other instead of taking every thread of
the pool that plain `def` routes and database sessions also need.

Limiters are made per event loop (a limiter belongs to the loop it was first used on; test clients and
server reloads start new loops).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")
LANES = {"admin": 1}
_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, anyio.CapacityLimiter]] = (
    weakref.WeakKeyDictionary())


def limiter(lane: str) -> anyio.CapacityLimiter:
    per_loop = _limiters.setdefault(asyncio.get_running_loop(), {})
    if lane not in per_loop:
        per_loop[lane] = anyio.CapacityLimiter(LANES[lane])
    return per_loop[lane]


async def run_blocking(fn: Callable[[], T], *, lane: str = "admin") -> T:
    """`fn()` in a worker thread, at most `LANES[lane]` at once; its exceptions propagate."""
    return await anyio.to_thread.run_sync(fn, limiter=limiter(lane))
