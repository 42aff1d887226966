"""A fast path for the hot route: an events batch decoded by msgspec instead of pydantic, for bodies it can vouch for.

Profiling the collector under load (bench/ingest.py --profile) showed half of its CPU in
`EventBatch.model_validate_json`, mostly in the per-field Python validators. msgspec decodes and type-checks the
same body in a fraction of that time. It must never change what is accepted or how it is stored, so:

- msgspec only decides *acceptance of clean bodies*. Anything it refuses, and anything it could read differently
  from pydantic (the `\\u0000` escape, UTF-16 surrogate escapes, deep nesting, an empty or
  oversized batch), returns None and the caller runs the pydantic schema, which produces the usual 413/422 with the
  usual messages. A refused body therefore costs one fast failed attempt more, nothing else.
- The checks that depend on settings are the schema's own: `metadata_json` (size and numbers) and the text length
  limit (`_check_text`'s comparison, read once per batch); timestamps are converted by pydantic's own `UtcTime`
  validator, so accepted values are identical, except epoch seconds, which `_epoch_seconds` converts exactly as
  pydantic does without its per-value cost (~1 µs an event, a tenth of the route's CPU at 2,000-event batches).
tests/ingest/test_fastparse.py compares both paths on valid and invalid bodies.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import msgspec
from pydantic import TypeAdapter, ValidationError

from monitor.schemas import Limits, metadata_json
from monitor.timestamps import UtcTime

_ClientId = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+\Z")]
_Short = Annotated[str, msgspec.Meta(max_length=256)]


class FastEvent(msgspec.Struct, forbid_unknown_fields=True):
    """The fields of `monitor.schemas.EventIn`, same names and bounds; `timestamp` is converted after decoding."""

    event_id: _ClientId
    timestamp: Any = None  # float | int | str on the wire; a UTC datetime once `parse_events` returns
    trace_id: _ClientId | None = None
    session_id: _ClientId | None = None
    model: _Short | None = None
    model_version: _Short | None = None
    prompt_template_id: _Short | None = None
    prompt_template_version: _Short | None = None
    prompt: str | None = None
    response: str | None = None
    latency_ms: Annotated[float, msgspec.Meta(ge=0, le=86_400_000)] | None = None
    prompt_tokens: Annotated[int, msgspec.Meta(ge=0, le=100_000_000)] | None = None
    completion_tokens: Annotated[int, msgspec.Meta(ge=0, le=100_000_000)] | None = None
    error: Annotated[str, msgspec.Meta(max_length=8192)] | None = None
    metadata: dict[str, Any] | None = None


class _Batch(msgspec.Struct, forbid_unknown_fields=True):
    events: list[FastEvent]


_DECODER: Final = msgspec.json.Decoder(_Batch)
# Bodies the two parsers might read differently: NUL and surrogate escapes (pydantic names the field or refuses
# the lone half). Searched only when the body has an escape at all: a regex pass over every body cost more than
# the decoding. (Integers past 64 bits need no such care: both parsers make them exact Python ints, and the
# schema's own metadata check refuses them.)
_ESCAPES: Final = re.compile(rb"\\u0000|\\u[dD][89abcdefABCDEF]")
_TIMES: Final = TypeAdapter(list[UtcTime | None])
# pydantic's JSON parser stops at 200 levels; metadata deeper than this goes to it to decide.
_MAX_DEPTH: Final = 64


def _too_deep(value: Any, depth: int = 0) -> bool:
    if depth > _MAX_DEPTH:
        return True
    if isinstance(value, dict):
        return any(isinstance(v, dict | list) and _too_deep(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(isinstance(v, dict | list) and _too_deep(v, depth + 1) for v in value)
    return False


_SECONDS_UNTIL: Final = 2e10
"""pydantic reads a number as seconds up to 2e10 and as milliseconds past it (left to pydantic)."""


def _epoch_seconds(value: Any) -> datetime | None:
    """A plain float or int of epoch seconds as the UTC datetime pydantic's `UtcTime` gives it; None for every other
    value (strings, milliseconds, negatives, booleans, exact half-microsecond ties), which pydantic then converts.

    `datetime.fromtimestamp` rounds the exact binary value to the microsecond, half to even; pydantic rounds half
    up. They differ only on exact ties, and a float is an exact tie of half a microsecond only when it is an odd
    multiple of 1/128 s (1/128 s = 7,812.5 µs; no other fraction with a power-of-two denominator lands on a half),
    so those go to pydantic. Every value here is inside `UtcTime`'s range (1970 to 2603).
    tests/ingest/test_fastparse.py compares both on random, tied and edge values."""
    kind = type(value)
    if kind is float:
        if not 0.0 <= value < _SECONDS_UNTIL:
            return None
        scaled = value * 128.0  # exact: a power of two
        if scaled.is_integer() and int(scaled) & 1:
            return None
    elif kind is not int or not 0 <= value < _SECONDS_UNTIL:
        return None
    return datetime.fromtimestamp(value, UTC)


def _times(values: list[Any]) -> list[datetime | None]:
    """The batch's timestamps through `UtcTime`, epoch seconds on the fast path; ValidationError as pydantic's."""
    out: list[datetime | None] = []
    rest: list[int] = []
    append, from_epoch = out.append, datetime.fromtimestamp
    for i, v in enumerate(values):
        # `_epoch_seconds`'s common case inline (a float of seconds, not a tie): a call per value costs a third.
        if type(v) is float and 0.0 <= v < _SECONDS_UNTIL and not ((s := v * 128.0).is_integer() and int(s) & 1):
            append(from_epoch(v, UTC))
            continue
        t = None if v is None else _epoch_seconds(v)
        if t is None and v is not None:
            rest.append(i)
        append(t)
    if rest:
        converted = _TIMES.validate_python([values[i] for i in rest])
        for i, t in zip(rest, converted, strict=True):
            out[i] = t
    return out


def parse_events(raw: bytes, limits: Limits) -> list[FastEvent] | None:
    """The batch's events, checked exactly as `EventBatch` checks them; None when pydantic must decide."""
    if b"\\u" in raw and _ESCAPES.search(raw):
        return None
    try:
        events = _DECODER.decode(raw).events
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):  # msgspec's own nesting limit
        return None
    if not 1 <= len(events) <= limits.max_batch_items:
        return None
    # The schema's own checks (`_check_text`, `metadata_json`) with the limits read once per batch, not per field;
    # a body without the \\u0000 escape (checked above) holds no NUL.
    limits = Limits(limits.max_text_chars, limits.max_metadata_bytes, limits.max_batch_items, may_contain_nul=False)
    max_chars = limits.max_text_chars
    try:
        for e in events:
            if (e.prompt is not None and len(e.prompt) > max_chars) or (
                    e.response is not None and len(e.response) > max_chars):
                return None
            if e.metadata is not None:
                dumped = metadata_json(e.metadata, limits)
                # Nesting deeper than _MAX_DEPTH takes more than 2 * _MAX_DEPTH brackets: only longer JSON is walked.
                if len(dumped) > 2 * _MAX_DEPTH and _too_deep(e.metadata):
                    return None
        times = _times([e.timestamp for e in events])
    except (ValueError, ValidationError, RecursionError):  # ValidationError is a ValueError too; RecursionError:
        return None  # metadata too deep for the JSON encoder (pydantic then refuses it)
    for e, ts in zip(events, times, strict=True):
        e.timestamp = ts
    return events
