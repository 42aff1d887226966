"""`UtcTime`: the one way a request carries a point in time (bodies, query parameters, UI paths).

Python's `datetime` reaches from year 1 to 9999, but only in its own time zone: `0001-01-01T00:00:00+23:59` is a
valid datetime whose UTC value lies before year 1, so converting it raises `OverflowError` (a 500, which made the
SDK retry the batch forever). Window arithmetic (a window's end, a retention cut-off, a week of reference) can
step past the edges too. So a time is converted to UTC here, once, and refused with a 422 naming its field unless
the UTC value lies in [1970-01-01, 9999-01-01): wide enough for every clock that is right, far enough from the
edges that adding a window or a year of retention never overflows, and not before the Unix epoch that OTLP and
epoch-seconds clients count from. A time without a zone is taken as UTC (what the SDK has always sent).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)  # exclusive
RANGE_MESSAGE = (f"is outside the supported range {EARLIEST:%Y-%m-%d} .. {LATEST:%Y-%m-%d} (UTC, after applying "
                 "its offset)")


class TimeRangeError(ValueError):
    """A time that is valid ISO 8601 but outside the supported range (its message fits after the field name)."""


def to_utc(value: datetime) -> datetime:
    """`value` in UTC (naive = UTC), or `TimeRangeError` when that lies outside [EARLIEST, LATEST)."""
    try:
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # the offset moved it past year 1 or year 9999
        raise TimeRangeError(RANGE_MESSAGE) from None
    if not EARLIEST <= utc < LATEST:
        raise TimeRangeError(RANGE_MESSAGE)
    return utc


def _utc(value: datetime) -> datetime:
    return to_utc(value)


UtcTime = Annotated[datetime, AfterValidator(_utc)]
"""A datetime (ISO 8601 with or without offset, or epoch seconds) converted to UTC and range-checked (422)."""


def parse_utc(text: str) -> datetime:
    """An ISO 8601 text with a zone, in UTC; `ValueError` (with a message for people) when it is not one."""
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time such as 2026-11-22T10:00:00Z") from None
    if ts.tzinfo is None:
        raise ValueError(f"{text!r} needs a time zone (end it with Z for UTC)")
    return to_utc(ts)
