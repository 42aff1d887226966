"""The background thread that turns queued items into HTTP batches (modelled on sentry-python's worker).

Loop: wait for "a batch is full" or the flush interval, drain the in-memory queue, encode and check
items (dropping invalid ones alone), pack request bodies, send them with retries, and spool to disk
what the collector cannot take. While the collector is unreachable, new batches go straight to the
spool and one spooled file is sent now and then as a probe; once one gets through, the spool is
replayed oldest-first between live batches.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from monitor.sdk.items import EVENT, FEEDBACK, InvalidItem, encode_item
from monitor.sdk.spool import Spool
from monitor.sdk.stats import Counters
from monitor.sdk.transport import Batch, Transport, WorkerConfig
from monitor.sdk.wire import Outcome, Verdict, pack_bodies, retry_delay

logger = logging.getLogger("driftloop.sdk")

_REPLAY_FILES_PER_ROUND: Final = 16  # then serve live traffic before replaying more
_SPOOL_RESCAN_SECONDS: Final = 30.0  # look for files other processes left behind


class FlushMarker:
    """Put in the queue by flush(); the worker sets `done` once everything queued before it is settled."""

    __slots__ = ("done", "lost_before")

    def __init__(self, lost_before: int) -> None:
        self.done = threading.Event()
        self.lost_before = lost_before


class Worker:
    """Owns one daemon thread and one httpx client; never shared across a fork (the child makes its own)."""

    def __init__(
        self,
        config: WorkerConfig,
        queue: deque[Any],
        wakeup: threading.Event,
        counters: Counters,
        spool: Spool | None,
        *,
        sleep: Callable[[float], object] | None = None,
        uniform01: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.spool = spool
        self.retry_schedule: deque[tuple[str, float]] = deque(maxlen=256)  # (reason, chosen delay)
        self._queue = queue
        self._wakeup = wakeup
        self._counters = counters
        self._sleep = sleep
        self._uniform01 = uniform01
        self._interrupt = threading.Event()
        self._flush_lock = threading.Lock()
        self._flush_requests = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._transport: Transport | None = None
        self._pending: dict[str, list[tuple[Any, ...]]] = {EVENT: [], FEEDBACK: []}
        self._inflight: list[Batch] = []
        self._down = False  # the collector did not answer; new batches go to the spool directly
        self._probe_attempt = 0
        self._next_replay = 0.0  # monotonic time of the next replay round (0: at start-up)
        self._spool_dirty = spool is not None
        self._last_scan = -_SPOOL_RESCAN_SECONDS
        self._warned: set[str] = set()

    # ----- lifecycle (called from app threads) -----

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="driftloop-sdk-worker", daemon=True)
        self._thread.start()

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def request_flush(self) -> FlushMarker:
        with self._flush_lock:
            self._flush_requests += 1
        marker = FlushMarker(self._counters.get("dropped_unreachable"))
        self._queue.append(marker)
        self._wakeup.set()
        self._interrupt.set()  # cut a retry wait short: with a spool, the batch is made durable now
        return marker

    def end_flush(self) -> None:
        with self._flush_lock:
            self._flush_requests -= 1

    def stop(self, timeout: float) -> bool:
        """Ask the thread to finish what is queued and exit; True if it did within `timeout`."""
        self._stopping = True
        self._wakeup.set()
        self._interrupt.set()
        if self._thread is None or self._thread is threading.current_thread():
            return False
        self._thread.join(max(0.0, timeout))
        return not self._thread.is_alive()

    # ----- the thread -----

    def _run(self) -> None:
        try:
            self._transport = Transport(self.config, self._counters)
            self._loop()
        except BaseException:  # a dying daemon thread must still say why, and never take the app down
            logger.exception("driftloop SDK worker stopped unexpectedly; events are no longer sent")
        finally:
            if self._transport is not None:
                self._transport.close()

    def _loop(self) -> None:
        interval = self.config.flush_interval
        next_flush = time.monotonic() + interval
        first = True
        while True:
            if not first and not self._queue:  # a non-empty queue (drain budget ran out): go on
                due = min(next_flush, self._next_replay) if self._spool_dirty else next_flush
                self._wakeup.wait(max(0.0, due - time.monotonic()))
                self._wakeup.clear()
            first = False
            try:
                self._drain()
                if self._stopping:
                    while self._queue:
                        self._drain()
                    self._ship_pending()
                    return
                now = time.monotonic()
                if now >= next_flush:
                    self._ship_pending()
                    next_flush = now + interval
                self._maybe_replay()
            except Exception:
                self._warn_once(
                    "loop", "driftloop SDK worker hit an internal error; it keeps going", exc=True
                )
                self._wakeup.wait(interval)  # do not spin on a persistent fault

    def _drain(self) -> None:
        taken = 0
        # Bounded, so that under a constant stream of log() calls the loop still gets round to the
        # interval flush of the other kind's partial batch and to spool replay.
        budget = max(4 * self.config.batch_size, 2000)
        try:
            for _ in range(budget):
                try:
                    item = self._queue.popleft()
                except IndexError:
                    return
                if type(item) is FlushMarker:
                    self._counters.add("queued", taken)  # count before a send that may block
                    taken = 0
                    self._ship_pending()
                    item.done.set()
                    continue
                taken += 1
                bucket = self._pending[item[0]]
                bucket.append(item)
                if len(bucket) >= self.config.batch_size:
                    self._counters.add("queued", taken)
                    taken = 0
                    self._ship(item[0])
        finally:
            self._counters.add("queued", taken)

    def _ship_pending(self) -> None:
        for kind in (EVENT, FEEDBACK):
            if self._pending[kind]:
                self._ship(kind)

    def _ship(self, kind: str) -> None:
        raw_items, self._pending[kind] = self._pending[kind], []
        batches = self._encode(kind, raw_items)
        self._inflight = batches
        while self._inflight:
            self._deliver(self._inflight[0])
            self._inflight.pop(0)

    def _encode(self, kind: str, raw_items: list[tuple[Any, ...]]) -> list[Batch]:
        lines: list[bytes] = []
        cfg = self.config
        for raw in raw_items:
            try:
                lines.append(encode_item(kind, raw[1:], cfg.limits, cfg.default_model, cfg.redact))
            except Exception as exc:  # InvalidItem, or anything odd an app object did while being read
                self._counters.add("dropped_invalid")
                reason = exc.reason if isinstance(exc, InvalidItem) else f"{type(exc).__name__}: {exc}"
                self._warn_once(
                    f"invalid:{kind}:{reason.split(' ', 1)[0]}",
                    "driftloop dropped an invalid %s item (%s); more like it are only counted in "
                    "stats.dropped_invalid",
                    kind,
                    reason,
                )
        max_items = min(cfg.batch_size, cfg.limits.max_batch_items)
        bodies = pack_bodies(kind, lines, max_items=max_items, max_body_bytes=cfg.limits.max_body_bytes)
        return [Batch(kind, n, raw=body) for body, n in bodies]

    # ----- sending -----

    def _give_up_now(self) -> bool:
        # With a spool, a pending flush/close wants the batch durable *now*, not after a long backoff.
        return self._stopping or (self.spool is not None and self._flush_requests > 0)

    def _deliver(self, batch: Batch) -> None:
        if self._down and self.spool is not None:
            self._to_spool(batch)
            return
        policy = self.config.retry
        attempt = 0
        while True:
            outcome = self._post(batch)
            if not outcome.retryable:
                self._settle(batch, outcome, replayed=False)
                return
            attempt += 1
            if attempt >= policy.max_attempts or self._give_up_now():
                break
            self._pause(retry_delay(outcome, attempt - 1, policy, self._uniform01), outcome)
            if self._give_up_now():
                break
        self._collector_unreachable(outcome)
        if self.spool is not None:
            self._to_spool(batch)
        else:
            self._counters.add("dropped_unreachable", batch.items)
            self._warn_once(
                "unreachable", "driftloop collector unreachable (%s); dropping batches", outcome.detail
            )

    def _post(self, batch: Batch) -> Outcome:
        assert self._transport is not None  # created first thing in the thread
        return self._transport.post(batch)

    def _settle(self, batch: Batch, outcome: Outcome, *, replayed: bool) -> None:
        """Count a final answer (2xx or a refusal that retrying cannot fix)."""
        if outcome.verdict is Verdict.OK:
            self._counters.add("sent", batch.items)
            self._counters.add("duplicates", min(outcome.duplicates, batch.items))
            if replayed:
                self._counters.add("replayed", batch.items)
            if self._down:
                logger.info("driftloop collector reachable again")
            self._down = False
            self._probe_attempt = 0
        elif outcome.verdict is Verdict.UNAUTHORIZED:
            self._counters.add("dropped_unauthorized", batch.items)
            self._warn_once(
                "unauthorized",
                "driftloop collector refused the api key (%s); batches are dropped until it is fixed",
                outcome.detail,
            )
        else:
            self._counters.add("dropped_rejected", batch.items)
            logger.warning(
                "driftloop collector refused a batch of %d %s items; dropped, not retried: %s",
                batch.items,
                batch.kind,
                outcome.detail,
            )

    def _pause(self, delay: float, outcome: Outcome) -> None:
        self._counters.add("retries")
        self.retry_schedule.append((outcome.verdict.value, delay))
        if self._sleep is not None:
            self._sleep(delay)
            return
        self._interrupt.wait(delay)
        self._interrupt.clear()

    def _collector_unreachable(self, outcome: Outcome) -> None:
        if self.spool is None:
            return
        if not self._down:
            logger.warning("driftloop collector unreachable (%s); spooling batches to disk", outcome.detail)
        self._down = True
        policy = self.config.retry
        delay = max(policy.backoff_base, retry_delay(outcome, self._probe_attempt, policy, self._uniform01))
        self._probe_attempt += 1
        self._next_replay = time.monotonic() + delay
        self._spool_dirty = True

    def _to_spool(self, batch: Batch) -> bool:
        assert self.spool is not None
        try:
            evicted = self.spool.write(batch.kind, batch.gz, batch.items)
        except OSError as exc:
            self._counters.add("dropped_unreachable", batch.items)
            self._warn_once("spool-write", "driftloop could not write to the spool (%s); batch dropped", exc)
            return False
        self._spool_dirty = True
        self._counters.add("spooled", batch.items)
        if evicted:
            self._counters.add("dropped_spool_full", evicted)
            self._warn_once(
                "spool-full", "driftloop spool is full (max_spool_bytes); dropping the oldest spooled batches"
            )
        return True

    # ----- replay -----

    def _maybe_replay(self) -> None:
        spool = self.spool
        now = time.monotonic()
        if spool is None or now < self._next_replay:
            return
        if not self._spool_dirty and now - self._last_scan < _SPOOL_RESCAN_SECONDS:
            return
        self._last_scan = now
        if not spool.directory.is_dir():  # nothing was ever spooled here; do not create the directory
            self._spool_dirty = False
            return
        with spool.replay_lock() as mine:
            if not mine:  # another process is replaying this directory
                self._next_replay = now + _SPOOL_RESCAN_SECONDS
                return
            if self._next_replay == 0.0:
                spool.clean_stale_temp_files()
            self._replay_round(spool)

    def _replay_round(self, spool: Spool) -> None:
        entries = spool.entries()
        if not entries:
            self._spool_dirty = False
            self._down = False
            self._next_replay = time.monotonic()
            return
        for entry in entries[:_REPLAY_FILES_PER_ROUND]:
            if self._stopping or self._flush_requests > 0:
                # The app is waiting on the live queue; resume shortly, without spinning meanwhile.
                self._next_replay = time.monotonic() + min(0.1, self.config.flush_interval)
                return
            gz = spool.read(entry)
            if gz is None:
                continue
            batch = Batch(entry.kind, entry.items, gz=gz)
            outcome = self._post(batch)
            if outcome.retryable:
                self._collector_unreachable(outcome)
                return
            spool.remove(entry)  # only now: a 2xx (or a final refusal) settled it
            self._settle(batch, outcome, replayed=True)
        self._next_replay = time.monotonic()  # more may remain: go on after serving live traffic

    # ----- rescue at exit (called from an app thread) -----

    def rescue_to_spool(self) -> int:
        """Write what is still in memory to the spool, for a process that exits while the worker is stuck.

        Best effort and duplicate-tolerant: a batch in flight may also be delivered by the worker.
        Returns the number of items written.
        """
        if self.spool is None:
            return 0
        batches = list(self._inflight)
        leftovers: dict[str, list[tuple[Any, ...]]] = {k: list(v) for k, v in self._pending.items()}
        while True:
            try:
                item = self._queue.popleft()
            except IndexError:
                break
            if type(item) is FlushMarker:
                item.done.set()
                continue
            self._counters.add("queued")
            leftovers[item[0]].append(item)
        for kind, raw_items in leftovers.items():
            batches.extend(self._encode(kind, raw_items))
        return sum(batch.items for batch in batches if self._to_spool(batch))

    def _warn_once(self, key: str, message: str, *args: object, exc: bool = False) -> None:
        if key in self._warned:
            logger.debug(message, *args)
            return
        self._warned.add(key)
        logger.warning(message, *args, exc_info=exc)
