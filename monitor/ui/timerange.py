"""The time-range picker of the overview, drift, alerts and events pages: a preset (`24h`, `7d`, `30d`) or a
custom from/to, carried in the query string so a range is a link one can share. No range: everything."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from monitor.timestamps import TimeRangeError, to_utc
from monitor.ui.security import PageError

PRESETS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


@dataclass(frozen=True)
class TimeRange:
    start: datetime | None = None
    end: datetime | None = None
    preset: str | None = None  # 24h | 7d | 30d | None (custom or all)

    @property
    def active(self) -> bool:
        return self.start is not None or self.end is not None

    def describe(self) -> str:
        if self.preset:
            return f"the last {self.preset}"
        if not self.active:
            return "all time"
        fmt = "%Y-%m-%d %H:%M UTC"
        start = self.start.strftime(fmt) if self.start else "the beginning"
        end = self.end.strftime(fmt) if self.end else "now"
        return f"{start} to {end}"

    def query(self) -> str:
        """The query-string part that keeps this range on links to other pages."""
        if self.preset:
            return f"range={self.preset}"
        parts = []
        if self.start:
            parts.append(f"from={self.start.strftime('%Y-%m-%dT%H:%M')}")
        if self.end:
            parts.append(f"to={self.end.strftime('%Y-%m-%dT%H:%M')}")
        return "&".join(parts)

    def form_value(self, which: str) -> str:
        ts = self.start if which == "from" else self.end
        return ts.strftime("%Y-%m-%dT%H:%M") if ts and not self.preset else ""


def _parse(name: str, raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        ts = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise PageError(422, f"{name}: not a date and time ({raw!r}); use YYYY-MM-DDTHH:MM (UTC)") from None
    try:
        return to_utc(ts)  # an extreme offset would overflow the conversion (issue #18, finding 6)
    except TimeRangeError as exc:
        raise PageError(422, f"{name}: {exc}") from None


def parse_range(preset: str | None, start: str | None, end: str | None, now: datetime | None = None) -> TimeRange:
    if preset and preset != "all":
        if preset not in PRESETS:
            raise PageError(422, f"range: one of {', '.join(PRESETS)} or all")
        now = now or datetime.now(UTC)
        return TimeRange(now - PRESETS[preset], None, preset)
    s, e = _parse("from", start), _parse("to", end)
    if s and e and e <= s:
        raise PageError(422, "to: must be after from")
    return TimeRange(s, e)
