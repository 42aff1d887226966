"""Strict JSON for JSONB columns and webhook payloads."""

from __future__ import annotations

import math
from typing import Any


def json_ready(obj: Any) -> Any:
    """Strict JSON for JSONB: NaN/inf become None (a CI of one template is NaN), numpy scalars plain numbers."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_ready(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, str | bytes):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
