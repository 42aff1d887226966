"""Turning result dataclasses into strict JSON-ready dicts."""

from __future__ import annotations

import math
from typing import Any


def json_safe(obj: Any) -> Any:
    """NaN -> None and tuples -> lists, recursively, so results serialise as strict JSON
    (Postgres JSONB and most clients reject NaN)."""
    if isinstance(obj, float):
        return None if math.isnan(obj) else obj
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj
