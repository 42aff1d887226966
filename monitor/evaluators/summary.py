"""Summarising one evaluator's scores over a window segment: mean and rate with 95% intervals, and coverage.
Pure: arrays in, a frozen result out."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from monitor.encoding import json_safe
from monitor.safety.intervals import mean_interval, wilson_interval


@dataclass(frozen=True)
class EvalSummary:
    sampled: int  # events of the segment's sample
    scored: int  # of them, with a value
    mean: float
    mean_ci_low: float
    mean_ci_high: float
    rate: float  # share labelled (value >= threshold)
    rate_ci_low: float
    rate_ci_high: float
    coverage: float  # scored / sampled

    def to_dict(self) -> dict[str, float | int | None]:
        return dict(json_safe(asdict(self)))


def summarise(values: np.ndarray, labels: np.ndarray) -> EvalSummary:
    """`values`: the sampled events' scores, NaN where unscored; `labels`: their labels (ignored where NaN)."""
    values = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(values)
    n, sampled = int(ok.sum()), int(values.size)
    coverage = n / sampled if sampled else math.nan
    if n == 0:
        return EvalSummary(sampled, 0, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, coverage)
    x = values[ok]
    hits = int(np.asarray(labels, dtype=bool)[ok].sum())
    m_low, m_high = mean_interval(x)
    r_low, r_high = wilson_interval(hits, n)
    return EvalSummary(sampled, n, float(x.mean()), max(0.0, m_low), min(1.0, m_high), hits / n, r_low, r_high,
                       coverage)
