"""Segments: `all`, each model version, each prompt-template version, and each value of configured metadata
keys. Only the most frequent values of each key get a segment, so cardinality stays bounded."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ALL = "all"
BUILTIN_KEYS = ("model_version", "prompt_template_version")


@dataclass(frozen=True)
class SegmentRow:
    model_version: str | None
    prompt_template_version: str | None
    metadata: dict[str, Any] | None


def _value(row: SegmentRow, key: str) -> str | None:
    v = getattr(row, key) if key in BUILTIN_KEYS else (row.metadata or {}).get(key)
    if v is None or isinstance(v, dict | list):
        return None
    return str(v)[:200]


def segment_label(key: str, value: str) -> str:
    return f"{key}={value}"


def segment_masks(rows: Sequence[SegmentRow], keys: Sequence[str], max_values: int) -> dict[str, np.ndarray]:
    """Boolean masks over `rows` per segment label, `all` first."""
    n = len(rows)
    masks: dict[str, np.ndarray] = {ALL: np.ones(n, dtype=bool)}
    for key in (*BUILTIN_KEYS, *keys):
        values = [_value(r, key) for r in rows]
        counts = Counter(v for v in values if v is not None)
        for value, _ in counts.most_common(max_values):
            masks[segment_label(key, value)] = np.fromiter((v == value for v in values), dtype=bool, count=n)
    return masks


def segment_matches(label: str, row: SegmentRow) -> bool:
    if label == ALL:
        return True
    key, _, value = label.partition("=")
    return _value(row, key) == value
