"""The HTTP side of the contract as pure functions: request bodies, response classes, retry delays.

Kept apart from the worker so each rule of the contract can be tested without a thread or a socket.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Final

# Per-request overhead of the JSON envelope around the items: `{"feedback":[` + `]}`.
_ENVELOPE_BYTES: Final = 16


def pack_bodies(
    kind: str, lines: Sequence[bytes], *, max_items: int, max_body_bytes: int
) -> list[tuple[bytes, int]]:
    """Group encoded items into request bodies `{"<kind>": [...]}` that respect both collector limits.

    Returns `(body, item_count)` pairs in input order. Each line must already fit alone in a body
    (the item encoder refuses larger ones).
    """
    head = b'{"' + kind.encode("ascii") + b'":['
    budget = max_body_bytes - _ENVELOPE_BYTES
    bodies: list[tuple[bytes, int]] = []
    chunk: list[bytes] = []
    size = 0
    for line in lines:
        extra = len(line) + (1 if chunk else 0)  # the comma
        if chunk and (len(chunk) >= max_items or size + extra > budget):
            bodies.append((head + b",".join(chunk) + b"]}", len(chunk)))
            chunk, size, extra = [], 0, len(line)
        chunk.append(line)
        size += extra
    if chunk:
        bodies.append((head + b",".join(chunk) + b"]}", len(chunk)))
    return bodies


class Verdict(Enum):
    OK = "ok"
    REJECTED = "rejected"  # 400/413/422 and other 4xx: this batch will never be accepted
    UNAUTHORIZED = "unauthorized"  # 401/403: the api key is wrong
    RETRY_AFTER = "retry_after"  # 429/503: the collector asked us to come back later
    TRANSIENT = "transient"  # other 5xx, 408, network errors, timeouts


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    accepted: int = 0
    duplicates: int = 0
    retry_after: float | None = None  # seconds, when the collector said so
    detail: str = ""

    @property
    def retryable(self) -> bool:
        return self.verdict in (Verdict.RETRY_AFTER, Verdict.TRANSIENT)


def parse_retry_after(value: str | None, now_epoch: float) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date; None if absent/garbled."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now_epoch
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _detail(body: bytes, limit: int = 500) -> str:
    text = body[: limit * 4].decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
        if isinstance(parsed, dict) and "detail" in parsed:
            text = json.dumps(parsed["detail"], ensure_ascii=False)
    except ValueError:
        pass
    return text[:limit]


def classify_response(status: int, headers: Mapping[str, str], body: bytes, now_epoch: float) -> Outcome:
    """Map a collector answer onto what the SDK must do next (the contract's response table)."""
    if 200 <= status < 300:
        accepted = duplicates = 0
        try:
            parsed = json.loads(body or b"{}")
            if isinstance(parsed, dict):
                accepted = int(parsed.get("accepted", 0))
                duplicates = int(parsed.get("duplicates", 0))
        except (ValueError, TypeError):
            pass  # a 2xx is success even if a proxy rewrote the body
        return Outcome(Verdict.OK, accepted=accepted, duplicates=duplicates)
    if status in (401, 403):
        return Outcome(Verdict.UNAUTHORIZED, detail=f"HTTP {status}: {_detail(body)}")
    if status in (429, 503):
        return Outcome(
            Verdict.RETRY_AFTER,
            retry_after=parse_retry_after(headers.get("retry-after"), now_epoch),
            detail=f"HTTP {status}",
        )
    if status >= 500 or status in (408, 425):
        return Outcome(Verdict.TRANSIENT, detail=f"HTTP {status}")
    # 400/413/422 by contract; any other 4xx or 3xx (wrong path, redirect) will not fix itself either,
    # and retrying a misrouted batch forever would only fill the spool.
    return Outcome(Verdict.REJECTED, detail=f"HTTP {status}: {_detail(body)}")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard the worker tries before spooling a batch to disk.

    `max_attempts` counts the first try. Waits use exponential backoff with full jitter
    (uniform in [0, min(cap, base * 2**n)]), so a fleet of apps does not retry in lockstep.
    A `Retry-After` from the collector is honored as given, up to `max_retry_after`.
    """

    max_attempts: int = 4
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_retry_after: float = 60.0


def backoff_delay(attempt: int, policy: RetryPolicy, uniform01: Callable[[], float]) -> float:
    """Full-jitter delay before retry number `attempt` (0-based)."""
    ceiling = min(policy.backoff_cap, policy.backoff_base * 2.0 ** min(attempt, 62))
    return ceiling * uniform01()


def retry_delay(outcome: Outcome, attempt: int, policy: RetryPolicy, uniform01: Callable[[], float]) -> float:
    """The wait before the next try: the collector's Retry-After when it gave one, else backoff."""
    if outcome.retry_after is not None:
        return min(outcome.retry_after, policy.max_retry_after)
    return backoff_delay(attempt, policy, uniform01)
