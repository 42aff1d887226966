"""Tumbling windows aligned to the Unix epoch, so every process agrees on window boundaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def window_start(ts: datetime, seconds: int) -> datetime:
    epoch = int(ts.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def window_bounds(ts: datetime, seconds: int) -> tuple[datetime, datetime]:
    start = window_start(ts, seconds)
    return start, start + timedelta(seconds=seconds)


def windows_between(start: datetime, end: datetime, seconds: int) -> list[datetime]:
    """Starts of every window overlapping [start, end]."""
    first = window_start(start, seconds)
    out = []
    cur = first
    while cur <= end:
        out.append(cur)
        cur += timedelta(seconds=seconds)
    return out
