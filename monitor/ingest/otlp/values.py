"""Turn OTLP attribute values into plain Python and coerce them leniently.

Instrumentations disagree on types (a token count arrives as int, double or string; a message list as a
JSON string or a structured array), so every getter here accepts what is plausible and returns None for
anything else instead of raising: one odd attribute must not lose the whole span.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

Attributes = Mapping[str, Any]


def any_value(value: AnyValue) -> Any:
    """AnyValue -> str | bool | int | float | bytes | list | dict | None (protobuf caps nesting at 100)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bytes_value":
        return bytes(value.bytes_value)
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_dict(value.kvlist_value.values)
    return None


def attributes_dict(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    """Key/value list -> dict. OTLP keys must be unique; if a sender repeats one, the first wins."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if pair.key not in out:
            out[pair.key] = any_value(pair.value)
    return out


def first(attrs: Attributes, *keys: str) -> Any:
    """The value of the first key present with a non-empty value."""
    for key in keys:
        value = attrs.get(key)
        if value is not None and value != "" and value != []:
            return value
    return None


def as_text(value: Any) -> str | None:
    """Strings as they are; numbers as their decimal form (a prompt version `3`); anything else None."""
    if isinstance(value, str):
        return value if value != "" else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else str(value)
    return None


def as_int(value: Any) -> int | None:
    """Counts: ints, integral doubles and digit strings are accepted; booleans and fractions are not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.isascii() and stripped.isdigit() and len(stripped) <= 18:
            return int(stripped)
    return None


def maybe_json(value: Any) -> Any:
    """A string that holds a JSON object/array/string is parsed; anything else comes back unchanged."""
    if not isinstance(value, str):
        return value
    stripped = value.lstrip()
    if not stripped or stripped[0] not in '[{"':
        return value
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return value


