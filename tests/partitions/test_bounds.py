"""Partition ranges are aligned, contiguous and half-open, whatever the timestamp's zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import pytest

from monitor.partitions.bounds import bounds_between, bounds_of, floor


def test_a_day_range_holds_its_timestamp_and_is_named_by_its_start() -> None:
    b = bounds_of(datetime(2026, 12, 4, 23, 59, 59, tzinfo=UTC), "day")
    assert (b.lower, b.upper) == (datetime(2026, 12, 4, tzinfo=UTC), datetime(2026, 12, 5, tzinfo=UTC))
    assert b.suffix() == "p20261204"


def test_a_timestamp_in_another_zone_goes_to_its_utc_day() -> None:
    # 01:00 on the 5th in UTC+2 is 23:00 on the 4th in UTC
    ts = datetime(2026, 12, 5, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    assert bounds_of(ts, "day").lower == datetime(2026, 12, 4, tzinfo=UTC)


def test_weeks_start_on_monday_and_months_on_the_first() -> None:
    assert floor(datetime(2026, 12, 6, 12, tzinfo=UTC), "week") == datetime(2026, 11, 30, tzinfo=UTC)
    assert bounds_of(datetime(2026, 12, 31, tzinfo=UTC), "month").upper == datetime(2027, 1, 1, tzinfo=UTC)
    assert bounds_of(datetime(2028, 2, 29, tzinfo=UTC), "month").upper == datetime(2028, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize("interval", ["day", "week", "month"])
def test_ranges_between_two_times_are_contiguous_and_cover_both(interval: str) -> None:
    start, end = datetime(2026, 1, 30, 5, tzinfo=UTC), datetime(2026, 4, 2, 7, tzinfo=UTC)
    ranges = list(bounds_between(start, end, interval))  # type: ignore[arg-type]
    assert ranges[0].lower <= start < ranges[0].upper and ranges[-1].lower <= end < ranges[-1].upper
    assert all(a.upper == b.lower for a, b in pairwise(ranges))


def test_an_unknown_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown partition interval"):
        floor(datetime(2026, 1, 1, tzinfo=UTC), "hour")  # type: ignore[arg-type]
