"""`Client`: the object an app keeps to log LLM calls and feedback to a driftloop collector.

The app-facing methods never raise and never block: `log()` appends a tuple to a bounded deque and
returns the event id (no JSON, no I/O, no lock); a daemon worker thread does the rest. Clients are
fork-safe (a child gets a fresh queue and worker, never the parent's thread or sockets) and are
flushed at interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from monitor.sdk.items import EVENT, FEEDBACK, Limits, new_id
from monitor.sdk.spool import Spool, default_spool_dir
from monitor.sdk.stats import Counters, Stats
from monitor.sdk.tracing import Trace
from monitor.sdk.transport import build_config
from monitor.sdk.wire import RetryPolicy
from monitor.sdk.worker import Worker

logger = logging.getLogger("driftloop.sdk")

_time = time.time  # bound once: the hot path should not look it up on every call
_FULL_QUEUE_WARNING_EVERY = 60.0  # seconds between "queue full" warnings
# The longest a log()/feedback() call may hold up the app's thread, collector outages included (the fault script
# bench/faults/collector_down.py holds the SDK to it). The calls wait for no network, disk or lock; the one wait
# left is for the interpreter lock while the worker thread encodes a batch, which CPython hands over within
# sys.getswitchinterval() (5 ms by default). Twice that leaves room for the OS scheduler on a busy machine.
LOG_BLOCK_BOUND_SECONDS = 0.010


class Client:
    """Logs LLM calls and user feedback to a driftloop collector in the background.

    See docs/sdk.md for the configuration table and the delivery guarantees.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_queue: int = 100_000,
        spool_dir: str | os.PathLike[str] | Literal[False] | None = None,
        max_spool_bytes: int = 256 * 1024 * 1024,
        timeout: float = 10.0,
        gzip: bool = True,
        enabled: bool = True,
        default_model: str | None = None,
        redact: bool | str | Mapping[str, str] = False,
        limits: Limits | None = None,
        retry: RetryPolicy | None = None,
        shutdown_timeout: float = 2.0,
        _sleep: Callable[[float], object] | None = None,
    ) -> None:
        # Fields the hot path reads first, so that a failed constructor still leaves a harmless no-op client.
        self._enabled = False
        self._queue: deque[Any] = deque()
        self._wakeup = threading.Event()
        self._counters = Counters()
        self._lifecycle_lock = threading.Lock()
        self._worker: Worker | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._closed = False
        self._max_queue = max(1, int(max_queue)) if isinstance(max_queue, int | float) else 100_000
        self._batch_size = 500
        self._last_full_warning = -_FULL_QUEUE_WARNING_EVERY
        self._reported: set[str] = set()
        self.shutdown_timeout = 2.0
        try:
            self._config = build_config(
                url, api_key, batch_size, flush_interval, timeout, gzip, limits, retry, default_model, redact
            )
            self._batch_size = self._config.batch_size
            self.shutdown_timeout = float(shutdown_timeout)
            self._sleep = _sleep
            self._spool_dir: Path | None = (
                None
                if spool_dir is False
                else Path(spool_dir)
                if spool_dir is not None
                else default_spool_dir(self._config.url, api_key)
            )
            self._max_spool_bytes = int(max_spool_bytes)
            self._enabled = bool(enabled)
            _live_clients.add(self)
            if self._enabled:
                self._ensure_worker()
        except Exception as exc:
            logger.error("driftloop SDK disabled: invalid configuration (%s)", exc)
            self._enabled = False

    # ----- the hot path -----

    def log(
        self,
        prompt: str | None = None,
        response: str | None = None,
        *,
        model: str | None = None,
        model_version: str | None = None,
        latency_ms: float | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        error: str | None = None,
        trace_id: str | None = None,
        session_id: str | None = None,
        prompt_template_id: str | None = None,
        prompt_template_version: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        event_id: str | None = None,
        timestamp: float | str | Any | None = None,
    ) -> str:
        """Queue one LLM call; returns its event id at once (use it for `feedback()`).

        Never raises and never blocks. Items are checked in the worker: one the collector would refuse
        is dropped and counted in `stats.dropped_invalid`. Do not mutate `metadata` after the call.
        """
        try:
            if event_id is None:
                event_id = new_id()
            if self._enabled:
                queue = self._queue
                if len(queue) < self._max_queue:
                    # Same order as items.EVENT_FIELDS.
                    # fmt: off
                    queue.append((
                        EVENT, event_id, _time() if timestamp is None else timestamp, trace_id, session_id,
                        model, model_version, prompt_template_id, prompt_template_version, prompt, response,
                        latency_ms, prompt_tokens, completion_tokens, error, metadata,
                    ))
                    # fmt: on
                    if self._worker is None:
                        self._ensure_worker()
                    if len(queue) >= self._batch_size and not self._wakeup.is_set():
                        self._wakeup.set()
                else:
                    self._queue_full()
        except Exception:
            self._report("log")
        return event_id if isinstance(event_id, str) else ""

    def feedback(
        self,
        event_id: str,
        *,
        score: float | None = None,
        label: str | None = None,
        comment: str | None = None,
        corrected_response: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        feedback_id: str | None = None,
        timestamp: float | str | Any | None = None,
    ) -> str:
        """Queue feedback about an event (it may be sent before the event); returns the feedback id."""
        try:
            if feedback_id is None:
                feedback_id = new_id()
            if self._enabled:
                timestamp = _time() if timestamp is None else timestamp
                # Same order as items.FEEDBACK_FIELDS.
                fields = (
                    feedback_id,
                    event_id,
                    timestamp,
                    score,
                    label,
                    comment,
                    corrected_response,
                    metadata,
                )
                self._enqueue((FEEDBACK, *fields))
        except Exception:
            self._report("feedback")
        return feedback_id if isinstance(feedback_id, str) else ""

    def _enqueue(self, item: tuple[Any, ...]) -> None:
        """The hot path's tail, for callers other than log() (which inlines it to save a call)."""
        queue = self._queue
        if len(queue) < self._max_queue:
            queue.append(item)
            if self._worker is None:
                self._ensure_worker()
            if len(queue) >= self._batch_size and not self._wakeup.is_set():
                self._wakeup.set()
        else:
            self._queue_full()

    def _queue_full(self) -> None:
        self._counters.add("dropped_queue_full")
        now = time.monotonic()
        if now - self._last_full_warning >= _FULL_QUEUE_WARNING_EVERY:
            self._last_full_warning = now
            logger.warning(
                "driftloop SDK queue is full (max_queue=%d); dropping events (see stats.dropped_queue_full)",
                self._max_queue,
            )

    # ----- helpers built on log() -----

    def trace(
        self,
        prompt: str | None = None,
        *,
        model: str | None = None,
        model_version: str | None = None,
        trace_id: str | None = None,
        session_id: str | None = None,
        prompt_template_id: str | None = None,
        prompt_template_version: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        event_id: str | None = None,
    ) -> Trace:
        """A context manager *and* decorator that times a call and logs it on exit (see `Trace`)."""
        return Trace(
            self,
            prompt=prompt,
            model=model,
            model_version=model_version,
            trace_id=trace_id,
            session_id=session_id,
            prompt_template_id=prompt_template_id,
            prompt_template_version=prompt_template_version,
            metadata=dict(metadata) if isinstance(metadata, Mapping) else None,
            event_id=event_id,
        )

    def wrap_openai(self, openai_client: Any) -> Any:
        """A proxy of an OpenAI-style client whose `chat.completions.create` calls are logged."""
        from monitor.sdk.openai_wrapper import wrap_openai

        return wrap_openai(openai_client, self)

    # ----- delivery control -----

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far was delivered or spooled (or refused as invalid).

        Returns False if that did not happen within `timeout` seconds or some of it was lost
        (collector unreachable and no spool). Never raises.
        """
        try:
            if not self._enabled:
                return not self._queue
            worker = self._ensure_worker()
            if worker is None or threading.current_thread() is worker.thread:
                return False
            marker = worker.request_flush()
            try:
                done = marker.done.wait(max(0.0, float(timeout)))
            finally:
                worker.end_flush()
            return done and self._counters.get("dropped_unreachable") == marker.lost_before
        except Exception:
            self._report("flush")
            return False

    def close(self, timeout: float | None = None) -> bool:
        """Flush, stop the worker, and (if the collector hangs) spool what is left; then log() is a no-op.

        Returns True when everything was delivered or spooled. Never raises.
        """
        try:
            if self._closed:
                return not self._queue
            budget = self.shutdown_timeout if timeout is None else max(0.0, float(timeout))
            deadline = time.monotonic() + budget
            ok = self.flush(budget) if self._enabled else True
            with self._lifecycle_lock:
                self._closed = True
                self._enabled = False
                worker = self._worker
            _live_clients.discard(self)
            if worker is None:
                return ok
            stopped = worker.stop(deadline - time.monotonic())
            if not (ok and stopped):
                # The worker is stuck (e.g. a hanging collector): make what is left durable from here.
                lost_before = self._counters.get("dropped_unreachable")
                rescued = worker.rescue_to_spool()
                if rescued:
                    logger.warning("driftloop spooled %d undelivered items at shutdown", rescued)
                ok = worker.spool is not None and self._counters.get("dropped_unreachable") == lost_before
            return ok
        except Exception:
            self._report("close")
            return False

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def stats(self) -> Stats:
        """A snapshot of the delivery counters."""
        try:
            snap = self._counters.snapshot(in_queue=len(self._queue))
            return replace(snap, queued=snap.queued + snap.in_queue)
        except Exception:
            self._report("stats")
            return Stats()

    @property
    def enabled(self) -> bool:
        return self._enabled

    @property
    def retry_schedule(self) -> list[tuple[str, float]]:
        """Recent retry waits the worker chose, as (reason, seconds); for tests and debugging."""
        worker = self._worker
        return list(worker.retry_schedule) if worker is not None else []

    @property
    def spool_dir(self) -> Path | None:
        return getattr(self, "_spool_dir", None)

    def __repr__(self) -> str:  # never show the api key
        url = getattr(getattr(self, "_config", None), "url", "?")
        return f"<driftloop Client url={url!r} enabled={self._enabled}>"

    # ----- internals -----

    def _ensure_worker(self) -> Worker | None:
        worker = self._worker
        if worker is not None and (worker.is_alive() or self._closed):
            return worker
        with self._lifecycle_lock:
            if self._closed:
                return self._worker
            worker = self._worker
            if worker is None or not worker.is_alive():
                spool = Spool(self._spool_dir, self._max_spool_bytes) if self._spool_dir is not None else None
                worker = Worker(
                    self._config, self._queue, self._wakeup, self._counters, spool, sleep=self._sleep
                )
                worker.start()
                self._worker = worker
                # A client the app drops without close() must not leave its thread behind. Not at exit,
                # though: there the atexit hook flushes first (finalize's own exit hook would run earlier).
                self._finalizer = weakref.finalize(self, worker.stop, 0.0)
                self._finalizer.atexit = False
            return worker

    def _reinit_after_fork(self) -> None:
        """In a forked child: fresh queue, locks and counters; the parent's worker is left untouched."""
        old = self._worker
        if self._finalizer is not None:
            self._finalizer.detach()  # it would poke the parent's worker, whose locks may be mid-use
            self._finalizer = None
        if old is not None:
            _orphans.append(
                old
            )  # keep it referenced: finalizing the parent's httpx client here is not ours to do
            if old.spool is not None:
                old.spool.forget_inherited_lock()
        self._queue = deque()
        self._wakeup = threading.Event()
        self._counters = Counters()
        self._lifecycle_lock = threading.Lock()
        self._worker = None  # the next log()/flush() starts a worker in this process

    def _report(self, where: str) -> None:
        # Called from `except` blocks; must not raise itself.
        with contextlib.suppress(Exception):
            if where not in self._reported:
                self._reported.add(where)
                logger.exception("driftloop SDK internal error in %s(); the app is not affected", where)


_live_clients: weakref.WeakSet[Client] = weakref.WeakSet()
_orphans: list[Worker] = []


def _after_fork_in_child() -> None:
    for client in list(_live_clients):
        with contextlib.suppress(Exception):
            client._reinit_after_fork()


def _close_all_at_exit() -> None:
    for client in list(_live_clients):
        with contextlib.suppress(Exception):
            client.close(client.shutdown_timeout)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all_at_exit)
