"""Non-ingest writes enter the app one at a time; reads and ingestion never wait (monitor/api/admission.py)."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from monitor.api.admission import WriteAdmission


class HoldingApp:
    """An ASGI app that records who is inside and answers a request only when the test lets it go."""

    def __init__(self) -> None:
        self.inside: set[str] = set()
        self.most_inside_writes = 0
        self.entered: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.go: dict[str, asyncio.Event] = defaultdict(asyncio.Event)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = f"{scope['method']} {scope['path']}"
        self.inside.add(name)
        writes = [n for n in self.inside if not n.startswith("GET") and "/v1/events" not in n]
        self.most_inside_writes = max(self.most_inside_writes, len(writes))
        self.entered[name].set()
        await self.go[name].wait()
        self.inside.discard(name)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": name.encode()})


async def _settle() -> None:
    for _ in range(50):  # let every ready task run as far as it can (no wall-clock wait)
        await asyncio.sleep(0)


def _client(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_a_second_write_waits_until_the_first_is_answered() -> None:
    inner = HoldingApp()
    async with _client(WriteAdmission(inner)) as client:
        first = asyncio.create_task(client.post("/v1/alert-rules", content=b"{}"))
        await asyncio.wait_for(inner.entered["POST /v1/alert-rules"].wait(), 5)
        second = asyncio.create_task(client.put("/v1/alert-rules/x", content=b"{}"))
        await _settle()
        assert not inner.entered["PUT /v1/alert-rules/x"].is_set(), "the second write entered beside the first"
        inner.go["POST /v1/alert-rules"].set()
        assert (await first).status_code == 200
        await asyncio.wait_for(inner.entered["PUT /v1/alert-rules/x"].wait(), 5)
        inner.go["PUT /v1/alert-rules/x"].set()
        assert (await second).status_code == 200
    assert inner.most_inside_writes == 1


@pytest.mark.anyio
async def test_reads_and_ingestion_pass_a_held_write() -> None:
    inner = HoldingApp()
    async with _client(WriteAdmission(inner)) as client:
        write = asyncio.create_task(client.post("/v1/alert-rules", content=b"{}"))
        await asyncio.wait_for(inner.entered["POST /v1/alert-rules"].wait(), 5)
        inner.go["GET /healthz"].set()
        inner.go["POST /v1/events"].set()
        health = await asyncio.wait_for(client.get("/healthz"), 5)
        ingest = await asyncio.wait_for(client.post("/v1/events", content=b"[]"), 5)
        assert (health.status_code, ingest.status_code) == (200, 200)
        assert not write.done()
        inner.go["POST /v1/alert-rules"].set()
        assert (await write).status_code == 200


@pytest.mark.anyio
async def test_a_long_write_lets_the_next_one_in_after_the_hold_limit() -> None:
    inner = HoldingApp()
    async with _client(WriteAdmission(inner, hold_limit=0.05)) as client:
        long = asyncio.create_task(client.post("/v1/erasure", content=b"{}"))
        await asyncio.wait_for(inner.entered["POST /v1/erasure"].wait(), 5)
        nxt = asyncio.create_task(client.post("/v1/alert-rules", content=b"{}"))
        # The long write is still inside (never told to answer) when the next one gets in.
        await asyncio.wait_for(inner.entered["POST /v1/alert-rules"].wait(), 5)
        assert "POST /v1/erasure" in inner.inside
        inner.go["POST /v1/alert-rules"].set()
        inner.go["POST /v1/erasure"].set()
        assert [(await t).status_code for t in (nxt, long)] == [200, 200]


def test_the_collector_admits_writes_after_the_body_limit() -> None:
    from monitor.api.app import create_app
    from monitor.api.body_cap import SmallBodies

    stack: list[object] = [m.cls for m in create_app().user_middleware]  # outermost first
    assert WriteAdmission in stack
    assert stack.index(SmallBodies) < stack.index(WriteAdmission), "bodies must be buffered before the gate"
