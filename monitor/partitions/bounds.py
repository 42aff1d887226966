"""Partition bounds: which time range holds a timestamp, and what its partition is called (pure functions).

Ranges are half-open `[lower, upper)` in UTC, aligned to the interval (a day starts at 00:00 UTC, a week on
Monday, a month on the 1st), so every process computes the same partition for the same timestamp.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

Interval = Literal["day", "week", "month"]
INTERVALS: tuple[Interval, ...] = ("day", "week", "month")


@dataclass(frozen=True, order=True)
class Bounds:
    lower: datetime
    upper: datetime

    def suffix(self) -> str:
        """`p20261204`: sorts by time, and says where the range starts."""
        return f"p{self.lower:%Y%m%d}"


def floor(ts: datetime, interval: Interval) -> datetime:
    ts = ts.astimezone(UTC) if ts.tzinfo else ts.replace(tzinfo=UTC)
    day = ts.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "day":
        return day
    if interval == "week":
        return day - timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    raise ValueError(f"unknown partition interval {interval!r}; use one of {', '.join(INTERVALS)}")


def step(lower: datetime, interval: Interval) -> datetime:
    """The start of the range after the one starting at `lower`."""
    if interval == "day":
        return lower + timedelta(days=1)
    if interval == "week":
        return lower + timedelta(days=7)
    return (lower.replace(day=28) + timedelta(days=4)).replace(day=1)


def bounds_of(ts: datetime, interval: Interval) -> Bounds:
    lower = floor(ts, interval)
    return Bounds(lower, step(lower, interval))


def bounds_between(start: datetime, end: datetime, interval: Interval) -> Iterator[Bounds]:
    """Every range that overlaps `[start, end]`, oldest first."""
    lower = floor(start, interval)
    while lower <= end:
        upper = step(lower, interval)
        yield Bounds(lower, upper)
        lower = upper
