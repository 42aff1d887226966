"""Turn what `log()` / `feedback()` captured into one JSON line per item, or say why it cannot be sent.

The hot path only appends a tuple of raw arguments to a queue; everything here runs later in the worker
thread. Checks mirror the collector's contract (`monitor/schemas.py`) so that one bad item is dropped
here, alone, instead of making the collector refuse its whole batch with a 422. Pure functions: no I/O,
no shared state; stdlib only (the SDK must not import pydantic).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from monitor.privacy.redact import PiiRefused, Policy, Redactor

EVENT: Final = "events"
FEEDBACK: Final = "feedback"

# Order of the raw tuples the hot path builds (after the leading kind tag). Keep in sync with
# `Client.log` / `Client.feedback`: a tuple is cheaper to build than a dict on every call.
EVENT_FIELDS: Final = (
    "event_id",
    "timestamp",
    "trace_id",
    "session_id",
    "model",
    "model_version",
    "prompt_template_id",
    "prompt_template_version",
    "prompt",
    "response",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "error",
    "metadata",
)
FEEDBACK_FIELDS: Final = (
    "feedback_id",
    "event_id",
    "timestamp",
    "score",
    "label",
    "comment",
    "corrected_response",
    "metadata",
)

_ID_RE: Final = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_ID_FIELDS: Final = frozenset({"event_id", "feedback_id", "trace_id", "session_id"})
_SHORT_FIELDS: Final = frozenset(
    {"model", "model_version", "prompt_template_id", "prompt_template_version", "label"}
)
_LONG_TEXT_FIELDS: Final = frozenset({"prompt", "response", "corrected_response"})
_MAX_SHORT: Final = 256
_MAX_ERROR: Final = 8192
_MAX_COMMENT: Final = 16_384
_MAX_LATENCY_MS: Final = 86_400_000.0
_MAX_TOKENS: Final = 100_000_000
_MAX_ABS_SCORE: Final = 1e6
# Epoch values above this are almost surely milliseconds; the collector would read them as such,
# so refuse rather than silently store a date in the year 2600.
_MAX_EPOCH_SECONDS: Final = 2e10


# uuid4 layout: version nibble 4, RFC 4122 variant bits 10.
_UUID4_KEEP: Final = 0xFFFFFFFF_FFFF_0FFF_3FFF_FFFFFFFFFFFF
_UUID4_SET: Final = 0x00000000_0000_4000_8000_000000000000


# The SDK's own generator, seeded from os.urandom: an app that seeds the global `random` (reproducible ML code
# does, often per request) must not make ids repeat, or the collector would drop its events as duplicates.
_ids = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_ids.seed)  # a forked child must not repeat its parent's ids
_getrandbits = _ids.getrandbits


def new_id() -> str:
    """A random id formatted exactly like `uuid.uuid4().hex`, in a third of the time.

    uuid4 reads os.urandom (a system call) on every call; the hot path uses a private Mersenne Twister,
    seeded from os.urandom and reseeded in forked children. Ids need uniqueness, not secrecy (the api key
    guards the collector).
    """
    return f"{_getrandbits(128) & _UUID4_KEEP | _UUID4_SET:032x}"


@dataclass(frozen=True)
class Limits:
    """The collector's limits. Defaults match the server's defaults; raise them only if the server's are."""

    max_batch_items: int = 10_000
    max_body_bytes: int = 16 * 1024 * 1024
    max_text_chars: int = 1_000_000
    max_metadata_bytes: int = 65_536


class InvalidItem(ValueError):
    """An item that the collector would refuse; `reason` names the field and the rule."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _check_str(name: str, value: object, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidItem(f"{name} must be a str, not {type(value).__name__}")
    if len(value) > limit:
        raise InvalidItem(f"{name} is {len(value)} characters long; the limit is {limit}")
    if "\x00" in value:
        # Postgres text columns cannot hold NUL; the collector refuses it.
        raise InvalidItem(f"{name} contains a NUL character")
    return value


def _check_id(name: str, value: object) -> str:
    if not isinstance(value, str) or _ID_RE.fullmatch(value) is None:
        raise InvalidItem(f"{name} must be 1-128 characters of A-Z a-z 0-9 . _ : - (got {value!r:.60})")
    return value


def _check_number(name: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidItem(f"{name} must be a number, not {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise InvalidItem(f"{name} is {value!r}; it must be a finite number in [{low:g}, {high:g}]")
    return number


def _check_count(name: str, value: object) -> int:
    number = _check_number(name, value, 0, _MAX_TOKENS)
    if not number.is_integer():
        raise InvalidItem(f"{name} must be a whole number, got {value!r}")
    return int(number)


_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 1, 1, tzinfo=UTC)  # exclusive, as the collector's


def _check_timestamp(value: object) -> float | str:
    """Epoch seconds stay a float (cheap); datetimes and ISO strings become canonical UTC ISO strings.

    The collector accepts 1970-01-01 .. 9999-01-01 UTC; anything outside is refused here, so the client never
    spools an item the collector will refuse on every retry.
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidItem(f"timestamp {value!r:.60} is not an ISO-8601 date-time") from None
    if isinstance(value, datetime):
        try:
            # A naive datetime means local time in Python (`datetime.now()`); make that explicit.
            utc = value.astimezone(UTC)
        except (OverflowError, ValueError):
            utc = None
        if utc is None or not _EARLIEST <= utc < _LATEST:
            raise InvalidItem(f"timestamp {value.isoformat()!r:.60} is outside 1970-01-01 .. 9999-01-01 UTC")
        return utc.isoformat()
    return _check_number("timestamp", value, 0, _MAX_EPOCH_SECONDS)


def _json_default(value: object) -> str:
    # Apps put datetimes, UUIDs, Decimals, enums... into metadata; their str() is the useful form.
    return str(value)


# Reused encoder objects (stateless) skip json.dumps' per-call set-up on the worker's busiest line.
_FIELDS_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
# Default separators on purpose: the collector measures metadata size with json.dumps defaults.
_METADATA_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, allow_nan=False, default=_json_default)


def _dump_metadata(value: object, limit: int) -> str:
    if not isinstance(value, Mapping):
        raise InvalidItem(f"metadata must be a JSON object (a dict), not {type(value).__name__}")
    try:
        text = _METADATA_ENCODER.encode(dict(value))
    except ValueError as exc:
        if "out of range float" in str(exc).lower():
            raise InvalidItem("metadata contains NaN or Infinity, which JSON cannot carry") from None
        raise InvalidItem(f"metadata cannot be serialized to JSON: {exc}") from None  # e.g. a cycle
    except (TypeError, RecursionError) as exc:
        raise InvalidItem(f"metadata cannot be serialized to JSON: {exc}") from None
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise InvalidItem(f"metadata serializes to {size} bytes; the limit is {limit}")
    if "\\u0000" in text:
        # Same test as the collector's, so that what it refuses is never sent.
        raise InvalidItem("metadata contains a NUL character")
    return text


def _replace_lone_surrogates(text: str) -> str:
    # UTF-16 round trip: valid pairs written as two code points are rejoined into one character,
    # lone halves (from broken decoding) become U+FFFD instead of failing the whole item.
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _replace_lone_surrogates(value)
    if isinstance(value, Mapping):
        return {_scrub(k) if isinstance(k, str) else k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def _encode(fields: dict[str, Any], metadata: object, limits: Limits, *, scrubbed: bool = False) -> bytes:
    text = _FIELDS_ENCODER.encode(fields)
    if metadata is not None:
        text = text[:-1] + ',"metadata":' + _dump_metadata(metadata, limits.max_metadata_bytes) + "}"
    try:
        line = text.encode("utf-8")
    except UnicodeEncodeError:
        if scrubbed:  # a surrogate hidden in some object's str(); give up on this item only
            raise InvalidItem("item contains text that is not valid Unicode") from None
        return _encode(_scrub(fields), _scrub(metadata), limits, scrubbed=True)
    # The batch envelope adds a few bytes; an item that alone fills a body can never be sent.
    if len(line) > limits.max_body_bytes - 64:
        raise InvalidItem(
            f"item serializes to {len(line)} bytes; the request limit is {limits.max_body_bytes}"
        )
    return line


_Checker = Callable[[str, object, Limits], object]

# One checker per field, looked up once per value: the worker runs this for every item.
_CHECKERS: Final[dict[str, _Checker]] = {
    **{name: lambda n, v, lim: _check_id(n, v) for name in _ID_FIELDS},
    "timestamp": lambda n, v, lim: _check_timestamp(v),
    **{name: lambda n, v, lim: _check_str(n, v, lim.max_text_chars) for name in _LONG_TEXT_FIELDS},
    **{name: lambda n, v, lim: _check_str(n, v, _MAX_SHORT) for name in _SHORT_FIELDS},
    "error": lambda n, v, lim: _check_str(n, v, _MAX_ERROR),
    "comment": lambda n, v, lim: _check_str(n, v, min(_MAX_COMMENT, lim.max_text_chars)),
    "latency_ms": lambda n, v, lim: _check_number(n, v, 0, _MAX_LATENCY_MS),
    "prompt_tokens": lambda n, v, lim: _check_count(n, v),
    "completion_tokens": lambda n, v, lim: _check_count(n, v),
    "score": lambda n, v, lim: _check_number(n, v, -_MAX_ABS_SCORE, _MAX_ABS_SCORE),
}


def _collect(
    names: tuple[str, ...], values: tuple[Any, ...], limits: Limits
) -> tuple[dict[str, Any], object]:
    if len(values) != len(names):
        raise InvalidItem(f"internal: expected {len(names)} values, got {len(values)}")
    fields: dict[str, Any] = {}
    metadata: object = None
    for name, value in zip(names, values, strict=True):
        if value is None:
            continue
        if name == "metadata":
            metadata = value
        else:
            fields[name] = _CHECKERS[name](name, value, limits)
    return fields, metadata


def encode_event(values: tuple[Any, ...], limits: Limits, default_model: str | None = None) -> bytes:
    """One event as compact UTF-8 JSON, or `InvalidItem` saying why the collector would refuse it."""
    if default_model is not None and values[EVENT_FIELDS.index("model")] is None:
        values = tuple(
            default_model if name == "model" else v for name, v in zip(EVENT_FIELDS, values, strict=True)
        )
    fields, metadata = _collect(EVENT_FIELDS, values, limits)
    if "event_id" not in fields:
        raise InvalidItem("event_id is required")
    return _encode(fields, metadata, limits)


def encode_feedback(values: tuple[Any, ...], limits: Limits) -> bytes:
    """One feedback item as a compact JSON object (UTF-8), or `InvalidItem`."""
    fields, metadata = _collect(FEEDBACK_FIELDS, values, limits)
    if "feedback_id" not in fields or "event_id" not in fields:
        raise InvalidItem("feedback needs a feedback_id and the event_id it is about")
    if not {"score", "label", "corrected_response"} & fields.keys():
        raise InvalidItem("feedback needs at least one of score, label or corrected_response")
    return _encode(fields, metadata, limits)


# Fields that can carry user text, redacted client-side when the Client is built with `redact=...`.
_REDACTED: Final = {
    EVENT: tuple(EVENT_FIELDS.index(n) for n in ("prompt", "response", "error", "metadata")),
    FEEDBACK: tuple(FEEDBACK_FIELDS.index(n) for n in ("comment", "corrected_response", "metadata")),
}


def redact_values(kind: str, values: tuple[Any, ...], policy: Policy) -> tuple[Any, ...]:
    """The raw tuple with PII redacted per `policy` (the collector's detectors, monitor/privacy). A value whose
    action is `refuse` makes the item invalid (dropped and counted, never sent)."""
    names = EVENT_FIELDS if kind == EVENT else FEEDBACK_FIELDS
    redactor = Redactor(policy)
    out = list(values)
    for i in _REDACTED.get(kind, ()):
        if i < len(out) and out[i] is not None:
            try:
                out[i] = redactor.value(out[i], names[i])
            except PiiRefused as exc:
                raise InvalidItem(f"{exc.field} {exc.message}") from None
    return tuple(out)


def encode_item(
    kind: str, values: tuple[Any, ...], limits: Limits, default_model: str | None = None,
    redact: Policy | None = None,
) -> bytes:
    """Dispatch on the queue tag (`EVENT` or `FEEDBACK`)."""
    if redact is not None:
        values = redact_values(kind, values, redact)
    if kind == EVENT:
        return encode_event(values, limits, default_model)
    if kind == FEEDBACK:
        return encode_feedback(values, limits)
    raise InvalidItem(f"internal: unknown item kind {kind!r}")
