"""One way to make values strict JSON, and one way to write a time: shared by every store and view.

Strict JSON because Postgres JSONB, webhook receivers and most clients refuse NaN and infinities.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any


def json_safe(value: Any) -> Any:
    """`value` as strict JSON, recursively: NaN/inf -> None, tuples -> lists, keys -> str, bytes -> hex,
    numpy scalars -> plain numbers. Anything else is returned as it is."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def finite(x: float | None) -> float | None:
    """A number a column can hold: None for NaN/inf (a metric that is not a number is stored as NULL)."""
    if x is None or not math.isfinite(x):
        return None
    return float(x)


def iso(x: date | None) -> str | None:
    """ISO 8601 of a datetime (or date); None stays None."""
    return x.isoformat() if x is not None else None
