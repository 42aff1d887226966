"""Collector down -> batches spooled -> collector back on the same port -> replayed, nothing lost."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from monitor.sdk import Client
from monitor.sdk.spool import Spool
from tests.sdk.receiver import Receiver, Reply

MakeClient = Callable[..., Client]


def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll `predicate` until it holds or `timeout` passes (for state the receiver cannot signal)."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            return False
        tick.wait(0.01)
    return True


def _prompts(n: int, tag: str) -> list[str]:
    # Incompressible text so spool sizes are predictable; unicode to catch encoding slips.
    return [f"{tag}-{i} ✓ {os.urandom(40).hex()}" for i in range(n)]


def test_spools_while_down_then_replays_when_back(receiver: Receiver, make_client: MakeClient) -> None:
    receiver.stop()
    client = make_client(receiver.url, batch_size=10)
    prompts = _prompts(30, "down")
    ids = [client.log(p, "r", metadata={"i": i}) for i, p in enumerate(prompts)]
    assert client.flush(5)  # durable on disk counts as flushed
    assert client.stats.spooled == 30 and client.stats.sent == 0
    assert sum(e.items for e in Spool(client.spool_dir or "", 1 << 30).entries()) == 30

    receiver.start()  # same port
    assert receiver.wait_for(lambda: len(receiver.events) == 30)
    assert eventually(lambda: client.stats.replayed == 30)
    for i, (event_id, prompt) in enumerate(zip(ids, prompts, strict=True)):
        assert receiver.events[event_id]["prompt"] == prompt
        assert receiver.events[event_id]["metadata"] == {"i": i}
    assert all(r.payload is not None for r in receiver.requests)  # every body was whole JSON
    assert eventually(lambda: Spool(client.spool_dir or "", 1 << 30).entries() == [])
    # And live traffic flows again.
    live = client.log("after recovery")
    assert client.flush(5)
    assert live in receiver.events


def test_a_new_process_replays_what_the_previous_one_left(
    receiver: Receiver, make_client: MakeClient
) -> None:
    receiver.stop()
    first = make_client(receiver.url)
    ids = [first.log(p) for p in _prompts(12, "old")]
    assert first.close(timeout=5)
    assert first.stats.spooled == 12

    receiver.start()
    second = make_client(receiver.url)  # same spool dir, like a restarted app
    assert receiver.wait_for(lambda: set(ids) <= set(receiver.events))
    assert eventually(lambda: second.stats.replayed == 12)
    assert all(receiver.deliveries[i] >= 1 for i in ids)


def test_flush_with_a_spool_does_not_wait_out_the_backoff(
    receiver: Receiver, make_client: MakeClient
) -> None:
    receiver.default = Reply(500)
    slept: list[float] = []
    client = make_client(receiver.url, _sleep=slept.append)
    client.log("make me durable")
    assert client.flush(5)
    assert client.stats.spooled == 1 and slept == []  # spooled at the first failure, no backoff wait
    receiver.default = Reply(200)
    assert eventually(lambda: client.stats.replayed == 1)


def test_spool_is_bounded_oldest_dropped_and_counted(receiver: Receiver, make_client: MakeClient) -> None:
    receiver.stop()
    client = make_client(receiver.url, batch_size=5, max_spool_bytes=4_000)
    ids = [client.log(p) for p in _prompts(60, "bound")]
    assert client.flush(5)
    stats = client.stats
    assert stats.spooled == 60 and stats.dropped_spool_full > 0
    entries = Spool(client.spool_dir or "", 1 << 30).entries()
    assert sum(e.size for e in entries) <= 4_000
    kept = sum(e.items for e in entries)
    assert kept == stats.spooled - stats.dropped_spool_full

    receiver.start()
    assert receiver.wait_for(lambda: len(receiver.events) == kept)
    assert list(receiver.events) == ids[-kept:]  # the newest survive, in order


def test_two_clients_sharing_a_spool_dir_deliver_everything_once_at_least(
    receiver: Receiver, make_client: MakeClient, tmp_path: Path
) -> None:
    receiver.stop()
    a = make_client(receiver.url, batch_size=4)
    b = make_client(receiver.url, batch_size=4)
    ids = [c.log(p) for p in _prompts(20, "ab") for c in (a, b)]
    assert a.flush(5) and b.flush(5)
    receiver.start()
    assert receiver.wait_for(lambda: set(ids) <= set(receiver.events))
    assert all(r.payload is not None for r in receiver.requests)
    assert eventually(lambda: Spool(tmp_path / "spool", 1 << 30).entries() == [])


def test_hanging_collector_at_close_spools_the_in_flight_batch(
    receiver: Receiver, make_client: MakeClient
) -> None:
    receiver.script(Reply(hang=True))
    client = make_client(receiver.url, timeout=30)
    ids = [client.log(f"p{i}") for i in range(5)]
    started = time.monotonic()
    assert client.close(timeout=0.5)  # True: what could not be sent is on disk
    assert time.monotonic() - started < 3.0
    assert client.stats.spooled == 5  # written by close() itself: the worker is stuck in the request
    on_disk = Spool(client.spool_dir or "", 1 << 30).entries()
    assert sum(e.items for e in on_disk) == 5
    receiver.release.set()

    successor = make_client(receiver.url)
    assert receiver.wait_for(lambda: set(ids) <= set(receiver.events))
    assert successor.enabled
