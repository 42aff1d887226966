"""The delivery retry schedule: exponential backoff with jitter, `Retry-After` honoured. Pure functions.

Equal jitter (half fixed, half random) keeps retries from many deliveries apart while guaranteeing each
wait is at least half the nominal one, so a struggling receiver really gets the breathing room.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# A receiver asking for more than this is treated as asking for this: a delivery must not hang forever.
MAX_RETRY_AFTER_SECONDS = 6 * 3600.0
RETRY_AFTER_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 10
    base_seconds: float = 5.0
    cap_seconds: float = 3600.0

    def nominal(self, attempt: int) -> float:
        """The un-jittered wait after failed attempt number `attempt` (1-based)."""
        if attempt < 1:
            raise ValueError("attempts are numbered from 1")
        exponent = min(attempt - 1, 62)  # 2**62 * base overflows nothing and is far past any cap
        return min(self.cap_seconds, self.base_seconds * math.pow(2.0, exponent))

    def backoff(self, attempt: int, u: float) -> float:
        """The wait after attempt `attempt`, with `u` in [0, 1) drawn by the caller: in [nominal/2, nominal]."""
        if not 0.0 <= u < 1.0:
            raise ValueError("u must be in [0, 1)")
        nominal = self.nominal(attempt)
        return nominal / 2 + nominal / 2 * u

    def next_delay(self, attempt: int, u: float, retry_after: float | None = None) -> float | None:
        """Seconds until the next attempt after failed attempt `attempt`, or None when attempts are used up.

        A `Retry-After` from the receiver is a floor: we never come back sooner than it asked.
        """
        if attempt >= self.max_attempts:
            return None
        delay = self.backoff(attempt, u)
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER_SECONDS))
        return delay


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
