"""The SDK never hurts its host: no exceptions, no blocking, bounded memory, fork-safe, light import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.sdk import Client
from tests.sdk.receiver import Receiver, Reply

MakeClient = Callable[..., Client]
REPO = Path(__file__).resolve().parents[2]


def test_importing_the_sdk_pulls_no_server_or_ml_packages() -> None:
    code = "import sys, json, monitor.sdk; print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(json.loads(result.stdout))
    assert "httpx" in loaded and "monitor" in loaded  # the check itself works
    forbidden = {
        "pydantic",
        "pydantic_core",
        "sqlalchemy",
        "torch",
        "fastapi",
        "numpy",
        "starlette",
        "celery",
    }
    assert not loaded & forbidden


def test_full_queue_drops_and_counts_without_blocking(receiver: Receiver, make_client: MakeClient) -> None:
    receiver.script(Reply(hang=True))  # the worker gets stuck on its first request
    client = make_client(receiver.url, batch_size=10, max_queue=50, timeout=30)
    for i in range(10):
        client.log(f"first {i}")
    assert receiver.wait_for(lambda: receiver.arrivals == 1)  # the worker is now stuck in that request
    started = time.monotonic()
    for i in range(2000):
        client.log(f"burst {i}")
    elapsed = time.monotonic() - started
    stats = client.stats
    assert stats.dropped_queue_full >= 2000 - 50 - 10
    assert stats.queued + stats.dropped_queue_full == 2010
    assert elapsed < 2.0  # 2000 calls; blocking on the hung request would take 30 s
    receiver.release.set()
    assert client.flush(10)
    assert len(receiver.events) == client.stats.queued


class _Hostile:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no eq either")

    __hash__ = object.__hash__


def _cyclic() -> dict[str, Any]:
    d: dict[str, Any] = {}
    d["self"] = d
    return d


garbage = st.one_of(
    st.none(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(),
    st.binary(),
    st.booleans(),
    st.builds(object),
    st.builds(_Hostile),
    st.builds(_cyclic),
    st.dictionaries(st.text(max_size=3), st.builds(_Hostile), max_size=2),
    st.lists(st.integers(), max_size=3),
)
LOG_PARAMS = (
    "model",
    "model_version",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "error",
    "trace_id",
    "session_id",
    "prompt_template_id",
    "prompt_template_version",
    "metadata",
    "event_id",
    "timestamp",
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    prompt=garbage,
    response=garbage,
    kwargs=st.dictionaries(st.sampled_from(LOG_PARAMS), garbage),
    fb=st.dictionaries(
        st.sampled_from(["score", "label", "comment", "corrected_response", "metadata"]), garbage
    ),
)
def test_public_methods_never_raise_on_garbage(
    receiver: Receiver, make_client: MakeClient, prompt: Any, response: Any, kwargs: dict[str, Any], fb: Any
) -> None:
    client = _shared_client(receiver, make_client)
    before = client.stats
    event_id = client.log(prompt, response, **kwargs)
    assert isinstance(event_id, str)
    assert isinstance(client.feedback(kwargs.get("event_id"), **fb), str)  # type: ignore[arg-type]
    with client.trace(prompt, model=kwargs.get("model"), metadata=kwargs.get("metadata")) as t:
        t.response = response
        t.prompt_tokens = kwargs.get("prompt_tokens")
    assert client.flush(5)
    after = client.stats
    assert after.queued - before.queued == 3
    assert after.sent + after.dropped_invalid == after.queued  # every item accounted for


_clients: dict[int, Client] = {}


def _shared_client(receiver: Receiver, make_client: MakeClient) -> Client:
    # One client for all examples of a run (the fixtures are shared across them anyway).
    key = id(receiver)
    if key not in _clients:
        _clients.clear()
        _clients[key] = make_client(receiver.url)
    return _clients[key]


def test_worker_survives_garbage_and_keeps_delivering(receiver: Receiver, make_client: MakeClient) -> None:
    client = make_client(receiver.url)
    client.log(_Hostile(), metadata={"x": _Hostile()})  # type: ignore[arg-type]
    client.log(metadata=_cyclic())
    client.log(event_id=_Hostile())  # type: ignore[arg-type]
    good = client.log("still here")
    assert client.flush(5)
    assert list(receiver.events) == [good]
    assert client.stats.dropped_invalid == 3


def test_flush_returns_within_its_timeout_when_the_collector_hangs(
    receiver: Receiver, make_client: MakeClient
) -> None:
    receiver.script(Reply(hang=True))
    client = make_client(receiver.url, timeout=30, spool_dir=False)
    client.log("stuck")
    started = time.monotonic()
    assert client.flush(timeout=0.5) is False
    assert 0.4 < time.monotonic() - started < 2.0
    receiver.release.set()
    assert client.flush(10)
    assert client.stats.sent == 1


def test_bad_configuration_disables_instead_of_raising(caplog: Any) -> None:
    client = Client("not-a-url", "key")
    assert not client.enabled
    assert isinstance(client.log("p"), str)
    assert client.flush(0.1)
    assert client.close(0.1)
    assert "disabled" in caplog.text
    assert Client("http://x", "k", batch_size=0).enabled is False


def test_disabled_client_sends_nothing(receiver: Receiver, make_client: MakeClient) -> None:
    client = make_client(receiver.url, enabled=False)
    event_id = client.log("p")
    assert len(event_id) == 32
    assert client.flush(1)
    assert receiver.requests == [] and client.stats.queued == 0


def test_log_after_close_is_a_no_op(receiver: Receiver, make_client: MakeClient) -> None:
    client = make_client(receiver.url)
    client.log("before")
    assert client.close(5)
    assert isinstance(client.log("after"), str)
    assert client.stats.queued == 1 and len(receiver.events) == 1


def test_repr_never_shows_the_api_key(receiver: Receiver) -> None:
    client = Client(receiver.url, "s3cret-key", spool_dir=False)
    try:
        assert "s3cret" not in repr(client)
        assert "s3cret" not in repr(client._config)
    finally:
        client.close(1)


def test_fork_child_gets_its_own_worker_and_parent_is_unaffected(
    receiver: Receiver, make_client: MakeClient
) -> None:
    client = make_client(receiver.url, batch_size=1000, flush_interval=3600)
    before_fork = [client.log(f"parent-before-{i}") for i in range(5)]  # still queued at fork time
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: log, flush, report, and leave without running the parent's test teardown
        code = 1
        try:
            os.close(read_fd)
            child_id = client.log("from the child")
            ok = client.flush(10)
            stats = client.stats
            os.write(write_fd, json.dumps([child_id, ok, stats.queued, stats.sent]).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        child_id, child_ok, child_queued, child_sent = json.loads(pipe.read())
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child_ok and child_queued == 1 and child_sent == 1  # only its own event, nothing inherited
    assert child_id in receiver.events

    after_fork = client.log("parent-after")
    assert client.flush(5)
    for event_id in [*before_fork, after_fork]:
        assert receiver.deliveries[event_id] == 1  # sent once, by the parent only
    assert receiver.deliveries[child_id] == 1


def test_a_dropped_client_stops_its_worker_after_sending(receiver: Receiver) -> None:
    import gc

    client = Client(receiver.url, "k", spool_dir=False, flush_interval=3600)
    event_id = client.log("orphaned")
    thread = client._worker.thread if client._worker else None
    assert thread is not None and thread.is_alive()
    del client
    gc.collect()
    thread.join(5)
    assert not thread.is_alive()
    assert event_id in receiver.events  # what was queued still went out on the way down


def test_events_logged_just_before_exit_are_sent_by_the_atexit_hook(receiver: Receiver) -> None:
    script = (
        "import sys; from monitor.sdk import Client; "
        f"c = Client({receiver.url!r}, 'k', spool_dir=False, flush_interval=3600); "
        "print(c.log('last words'))"  # no flush(), no close(): the interpreter just exits
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    event_id = result.stdout.strip()
    assert event_id in receiver.events


def test_default_spool_dir_is_per_user_and_keyed_without_the_secret(monkeypatch: Any, tmp_path: Path) -> None:
    from monitor.sdk import default_spool_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = default_spool_dir("http://a:8000", "secret-1")
    assert first.parent == tmp_path / "driftloop" / "spool"
    assert "secret" not in str(first)
    assert default_spool_dir("http://a:8000", "secret-2") != first  # another key never replays this spool
    assert default_spool_dir("http://b:8000", "secret-1") != first
    assert default_spool_dir("http://a:8000", "secret-1") == first
