"""Delivery counters: what happened to every item the app handed to the SDK."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class Stats:
    """A snapshot of a client's counters (items, not requests, unless the name says otherwise).

    Every accepted item ends up in exactly one of: sent, dropped_* , still queued / in flight, or
    waiting in the spool (spooled minus replayed minus dropped_spool_full, summed over processes).
    """

    queued: int = 0  # accepted by log()/feedback() into the in-memory queue
    sent: int = 0  # in a batch the collector answered 2xx (live or replayed), including duplicates
    duplicates: int = 0  # of `sent`, items the collector already had (a retried batch)
    replayed: int = 0  # of `sent`, items that came back from the disk spool
    spooled: int = 0  # written to the disk spool because the collector was unreachable
    retries: int = 0  # retry attempts (requests), live and replay
    requests: int = 0  # HTTP requests made
    dropped_queue_full: int = 0  # log() found the queue full
    dropped_invalid: int = 0  # the collector would refuse the item (too long, NUL, bad id...)
    dropped_rejected: int = 0  # in a batch the collector refused (400/413/422/other 4xx)
    dropped_unauthorized: int = 0  # in a batch refused with 401/403 (bad api key)
    dropped_unreachable: int = 0  # retries exhausted and no spool (or the disk refused it)
    dropped_spool_full: int = 0  # evicted from the spool to respect max_spool_bytes
    in_queue: int = 0  # currently waiting in memory (not a counter)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


_COUNTER_NAMES = frozenset(f.name for f in fields(Stats)) - {"in_queue"}


class Counters:
    """Thread-safe counters; the worker and the app's threads both add to them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(_COUNTER_NAMES, 0)

    def add(self, name: str, n: int = 1) -> None:
        if name not in _COUNTER_NAMES:
            raise KeyError(name)
        with self._lock:
            self._values[name] += n

    def get(self, name: str) -> int:
        with self._lock:
            return self._values[name]

    def snapshot(self, in_queue: int) -> Stats:
        with self._lock:
            return Stats(**self._values, in_queue=in_queue)
