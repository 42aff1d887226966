"""The ingestion contract: what `POST /v1/events` and `POST /v1/feedback` accept.

The SDK (`monitor.sdk`) builds plain dicts of exactly these fields without importing pydantic, and the
OTLP mapping produces the same dicts, so this module is the one place the wire format is defined.
Limits that depend on settings (text length, metadata size) are checked with the validation context so
that one compiled schema serves every configuration.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator, model_validator

from monitor.timestamps import UtcTime

ClientId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")]
ShortText = Annotated[str, StringConstraints(max_length=256)]


@dataclass(frozen=True)
class Limits:
    max_text_chars: int = 1_000_000
    max_metadata_bytes: int = 65_536
    max_batch_items: int = 10_000
    # JSON can only carry NUL as the escape \u0000, so a body without that escape needs no per-field scan.
    # Callers that validate dicts (not raw JSON) leave this True.
    may_contain_nul: bool = True


def dump_json(value: Any) -> bytes:
    """Compact JSON; orjson where it can (fast), the standard library for what it refuses (ints > 64 bits)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")


def _limits(info: ValidationInfo) -> Limits:
    ctx = info.context or {}
    limits = ctx.get("limits")
    return limits if isinstance(limits, Limits) else Limits()


def _check_text(value: str | None, info: ValidationInfo) -> str | None:
    if value is None:
        return None
    limits = _limits(info)
    if len(value) > limits.max_text_chars:
        raise ValueError(f"is {len(value)} characters long; the limit is {limits.max_text_chars}")
    if limits.may_contain_nul and "\x00" in value:
        raise ValueError("contains a NUL character (\\u0000), which cannot be stored")
    return value


def _check_metadata(value: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
    if value is None:
        return None
    metadata_json(value, _limits(info))
    return value


def metadata_json(value: dict[str, Any], limits: Limits) -> bytes:
    """The checks on a metadata object (size, numbers JSON cannot hold exactly, NUL); returns its JSON, which the
    checks need anyway. ValueError with the message for the client."""
    dumped = dump_json(value)
    size = len(dumped)
    if size > limits.max_metadata_bytes:
        raise ValueError(f"serializes to {size} bytes; the limit is {limits.max_metadata_bytes}")
    # NaN and Infinity serialize as null, integers past 64 bits as long digit runs: only then is a walk needed.
    # `find`, not `in`: bytes `in` first tries its operand as an int and formats a TypeError for every call.
    if dumped.find(b"null") >= 0 or (len(dumped) > 20 and _LONG_DIGIT_RUN.search(dumped)):
        problem = _unstorable_number(value, "")
        if problem:
            raise ValueError(problem)
    if limits.may_contain_nul and _has_nul(value):
        raise ValueError("contains a NUL character (\\u0000), which cannot be stored")
    return dumped


# Two tests, not the one alternation `null|\d{19}`: the regex engine has no literal to skip ahead to, and at 0.27 µs
# for a small object it cost more than encoding it (0.1 µs); 0.19 now. 19 digits need more than 20 bytes of JSON
# (`{"":` + digits + `}`).
_LONG_DIGIT_RUN = re.compile(rb"\d{19}")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _unstorable_number(value: Any, path: str) -> str | None:
    """Why a number inside a JSON value would not be stored exactly (NaN/Infinity become null, integers past 64 bits
    are refused by Postgres or rounded), naming its key path; None when every number is fine. Refused, never
    changed: the client learns which field to fix."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{path or 'the value'} is {value!r}; only finite numbers can be stored (JSON has no NaN or Infinity)"
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        return f"{path or 'the value'} is an integer outside the 64-bit range; send it as a string to keep it exact"
    if isinstance(value, dict):
        for k, v in value.items():
            found = _unstorable_number(v, f"{path}.{k}" if path else str(k))
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _unstorable_number(v, f"{path}[{i}]")
            if found:
                return found
    return None


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


NUL_MESSAGE = "contains a NUL character (\\u0000), which cannot be stored"


class NulFreeModel(BaseModel):
    """A body whose text is stored: NUL is refused in every field (in strings, and in the keys and values of
    lists and dicts inside them). Postgres text cannot hold NUL and SQLite would store it; refusing it here gives
    the same 422 naming the field on both backends. (Events and feedback check it themselves, field by field,
    and only when the raw body has the escape.)"""

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if _has_nul(value):
            raise ValueError(NUL_MESSAGE)
        return value


def _no_nul_anywhere(model: BaseModel) -> None:
    # Postgres text cannot hold NUL; refusing it here keeps a bad item from turning into a 500 (and an
    # endless SDK retry) at insert time.
    for name, value in model:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError(f"{name} contains a NUL character (\\u0000), which cannot be stored")


class EventIn(BaseModel):
    """One LLM call as the app saw it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    event_id: ClientId = Field(description="Client-generated id, unique per project; a retried event is stored once.")
    timestamp: UtcTime | None = Field(
        None, description="When the call started (ISO 8601 or epoch seconds), 1970..9999 in UTC. Default: arrival."
    )
    trace_id: ClientId | None = Field(None, description="Trace or conversation id, to group calls.")
    session_id: ClientId | None = Field(None, description="End-user session id.")
    model: ShortText | None = Field(None, description="Model name, e.g. `smollm2-135m`.")
    model_version: ShortText | None = Field(None, description="Served model version (e.g. registry version).")
    prompt_template_id: ShortText | None = None
    prompt_template_version: ShortText | None = None
    prompt: str | None = Field(None, description="The user prompt (or the rendered final message).")
    response: str | None = Field(None, description="The model's answer.")
    latency_ms: float | None = Field(None, ge=0, le=86_400_000)
    prompt_tokens: int | None = Field(None, ge=0, le=100_000_000)
    completion_tokens: int | None = Field(None, ge=0, le=100_000_000)
    error: Annotated[str, StringConstraints(max_length=8192)] | None = Field(
        None, description="Error text when the call failed."
    )
    metadata: dict[str, Any] | None = Field(None, description="Free JSON object; segments can use its keys.")

    _text = field_validator("prompt", "response")(_check_text)
    _meta = field_validator("metadata")(_check_metadata)

    @model_validator(mode="after")
    def _no_nul(self, info: ValidationInfo) -> EventIn:
        if _limits(info).may_contain_nul:
            _no_nul_anywhere(self)
        return self


class FeedbackIn(BaseModel):
    """User feedback on one event, linked by the event's client id. It may arrive before the event."""

    model_config = ConfigDict(extra="forbid")

    feedback_id: ClientId = Field(description="Client-generated id; a retried feedback is stored once.")
    event_id: ClientId = Field(description="The `event_id` of the call this feedback is about.")
    timestamp: UtcTime | None = None
    score: float | None = Field(None, ge=-1e6, le=1e6, description="Numeric score, e.g. 1 / 0 or 1..5.")
    label: ShortText | None = Field(None, description="Categorical label, e.g. `thumbs_up`.")
    comment: Annotated[str, StringConstraints(max_length=16_384)] | None = None
    corrected_response: str | None = Field(None, description="What the answer should have been.")
    metadata: dict[str, Any] | None = None

    _text = field_validator("corrected_response", "comment")(_check_text)
    _meta = field_validator("metadata")(_check_metadata)

    @model_validator(mode="after")
    def _has_signal(self, info: ValidationInfo) -> FeedbackIn:
        if _limits(info).may_contain_nul:
            _no_nul_anywhere(self)
        if self.score is None and self.label is None and self.corrected_response is None:
            raise ValueError("feedback needs at least one of score, label or corrected_response")
        return self


def _check_batch_length(value: Any, info: ValidationInfo) -> Any:
    # Runs before the items are validated, so an oversized batch is refused without parsing every item.
    limit = _limits(info).max_batch_items
    if isinstance(value, list) and len(value) > limit:
        raise ValueError(f"has {len(value)} items; the limit is {limit} per batch")
    return value


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[EventIn] = Field(
        min_length=1, description="One or more events; the batch is stored whole or not at all."
    )

    _len = field_validator("events", mode="before")(_check_batch_length)


class FeedbackBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    feedback: list[FeedbackIn] = Field(min_length=1)

    _len = field_validator("feedback", mode="before")(_check_batch_length)


class IngestResult(BaseModel):
    accepted: int = Field(description="Newly stored items.")
    duplicates: int = Field(description="Items already stored under the same client id (not stored again).")
