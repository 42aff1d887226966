"""The one result type every drift detector returns, and the error for windows too small to judge."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


class InsufficientDataError(ValueError):
    """A window holds fewer samples than the detector's `min_samples`.

    A subclass of ValueError so generic callers still see a clear error, while the pipeline can catch
    this one specifically and record the window as "insufficient" instead of as a failure: hourly
    windows of a quiet segment are routinely this small.
    """


def _jsonable(value: Any) -> Any:
    """Turn numpy scalars/arrays and tuples into plain JSON types; non-finite floats become None."""
    if hasattr(value, "tolist"):  # numpy scalar or array
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class DriftResult:
    """Outcome of one two-sample drift test (field names follow alibi-detect's `is_drift, p_val, threshold`).

    `threshold` is what `statistic` or `p_value` is compared with: alpha for tests with a p-value,
    the score cut-off for score-only methods (PSI, Evidently's defaults). `effect_size` is the
    method's practical size of the change (documented per method in docs/drift.md); detectors that
    have one only report drift when it also clears their `min_effect` floor (in `details`).
    """

    method: str
    statistic: float
    p_value: float | None
    threshold: float
    is_drift: bool
    effect_size: float | None
    n_reference: int
    n_current: int
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (numpy types converted, NaN/inf as None)."""
        return {
            "method": self.method,
            "statistic": _jsonable(float(self.statistic)),
            "p_value": None if self.p_value is None else _jsonable(float(self.p_value)),
            "threshold": _jsonable(float(self.threshold)),
            "is_drift": bool(self.is_drift),
            "effect_size": None if self.effect_size is None else _jsonable(float(self.effect_size)),
            "n_reference": int(self.n_reference),
            "n_current": int(self.n_current),
            "details": _jsonable(self.details),
        }
