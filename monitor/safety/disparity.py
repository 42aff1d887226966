"""Production disparity: do some user groups get worse outputs than others?

Per metric (toxic flag rate, mean sentiment, negative-feedback rate) and per group: n, value and
a confidence interval; across groups: the largest gap, the min/max ratio, and a permutation
p-value for the max gap. A metric is flagged only with both practical evidence (four-fifths
rule for rates, a gap threshold for means) and statistical evidence (p < alpha), and only
groups with at least ``min_group_size`` events take part, so a handful of events never pages.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from monitor.safety.intervals import mean_interval, wilson_interval
from monitor.safety.permutation import max_gap_pvalue
from monitor.safety.serialization import json_safe

MetricKind = Literal["rate", "mean"]


@dataclass(frozen=True)
class DisparityConfig:
    """Thresholds for flagging. Defaults suit hourly-to-daily windows of production traffic."""

    min_group_size: int = 30
    alpha: float = 0.01
    # Four-fifths rule: flag a rate when the lowest group's rate is under 0.8x the highest's.
    min_rate_ratio: float = 0.8
    # ...and the absolute gap is at least this, so 0.1% vs 0.2% toxicity does not page anyone.
    min_rate_gap: float = 0.01
    # Mean VADER compound gap (scale -1..1) that counts as practically meaningful.
    sentiment_gap_threshold: float = 0.1
    n_permutations: int = 999
    confidence: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if self.min_group_size < 1:
            raise ValueError("min_group_size must be >= 1")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError("alpha must be in (0, 1)")
        if not 0.0 < self.min_rate_ratio <= 1.0:
            raise ValueError("min_rate_ratio must be in (0, 1]")


@dataclass(frozen=True)
class GroupStat:
    group: str
    n: int
    value: float
    ci_low: float
    ci_high: float
    eligible: bool  # n >= min_group_size: takes part in the gap, ratio and test


@dataclass(frozen=True)
class MetricDisparity:
    metric: str
    kind: MetricKind
    groups: tuple[GroupStat, ...]
    max_group: str | None
    min_group: str | None
    gap: float  # largest minus smallest eligible group value
    ratio: float  # smallest / largest eligible group value (rates only; NaN for means)
    threshold: float  # the practical threshold applied (ratio for rates, gap for means)
    p_value: float  # permutation test of the max gap over eligible groups
    practical: bool
    significant: bool
    is_flagged: bool
    test: str = "permutation_max_gap"

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))


@dataclass(frozen=True)
class DisparityReport:
    metrics: tuple[MetricDisparity, ...]

    @property
    def is_flagged(self) -> bool:
        return any(m.is_flagged for m in self.metrics)

    def get(self, metric: str) -> MetricDisparity:
        for m in self.metrics:
            if m.metric == metric:
                return m
        raise KeyError(f"no metric {metric!r} in this report; have {[m.metric for m in self.metrics]}")

    def to_dict(self) -> dict[str, Any]:
        return {"is_flagged": self.is_flagged, "metrics": {m.metric: m.to_dict() for m in self.metrics}}


def _group_labels(groups: Sequence[Any] | np.ndarray) -> list[str | None]:
    """Group labels as strings; None, NaN and empty strings mean "no group"."""
    out: list[str | None] = []
    for g in groups:
        if g is None or (isinstance(g, float) and math.isnan(g)):
            out.append(None)
        else:
            s = str(g)
            out.append(s if s else None)
    return out


def _metric_disparity(
    metric: str,
    kind: MetricKind,
    groups: Sequence[Any] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    config: DisparityConfig,
) -> MetricDisparity:
    labels = _group_labels(groups)
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(labels) != x.size:
        raise ValueError(f"{metric}: {x.size} values for {len(labels)} group labels")
    keep = np.array([lab is not None for lab in labels], dtype=bool) & np.isfinite(x)
    if kind == "rate" and not np.all(np.isin(x[keep], (0.0, 1.0))):
        raise ValueError(f"{metric}: a rate metric needs 0/1 (or boolean) flags per event")
    kept_labels = [lab for lab, k in zip(labels, keep, strict=True) if k and lab is not None]
    kept = x[keep]
    names = sorted(set(kept_labels))
    code_of = {name: i for i, name in enumerate(names)}
    codes = np.fromiter((code_of[lab] for lab in kept_labels), dtype=np.int64, count=len(kept_labels))

    stats: list[GroupStat] = []
    for code, name in enumerate(names):
        v = kept[codes == code]
        n = int(v.size)
        if kind == "rate":
            low, high = wilson_interval(int(v.sum()), n, config.confidence)
        else:
            low, high = mean_interval(v, config.confidence)
        stats.append(GroupStat(name, n, float(v.mean()), low, high, n >= config.min_group_size))

    eligible = [s for s in stats if s.eligible]
    threshold = config.min_rate_ratio if kind == "rate" else config.sentiment_gap_threshold
    if len(eligible) < 2:
        return MetricDisparity(
            metric,
            kind,
            tuple(stats),
            None,
            None,
            math.nan,
            math.nan,
            threshold,
            math.nan,
            False,
            False,
            False,
        )
    hi = max(eligible, key=lambda s: s.value)
    lo = min(eligible, key=lambda s: s.value)
    gap = hi.value - lo.value
    if kind == "rate":
        ratio = 1.0 if hi.value == 0.0 else lo.value / hi.value
        practical = ratio < config.min_rate_ratio and gap >= config.min_rate_gap
    else:
        ratio = math.nan
        practical = gap >= config.sentiment_gap_threshold

    # The test uses only eligible groups, re-coded 0..m-1, so tiny groups neither add noise
    # to the max-gap statistic nor get to be its extremes.
    eligible_codes = [code_of[s.group] for s in eligible]
    remap = np.full(len(names), -1, dtype=np.int64)
    remap[eligible_codes] = np.arange(len(eligible_codes))
    in_test = remap[codes] >= 0
    rng = np.random.default_rng(config.seed)
    p_value = max_gap_pvalue(
        remap[codes][in_test], kept[in_test], n_permutations=config.n_permutations, rng=rng
    )
    significant = p_value < config.alpha
    return MetricDisparity(
        metric,
        kind,
        tuple(stats),
        hi.group,
        lo.group,
        gap,
        ratio,
        threshold,
        p_value,
        practical,
        significant,
        practical and significant,
    )


def rate_disparity(
    groups: Sequence[Any] | np.ndarray,
    flags: Sequence[float | bool] | np.ndarray,
    *,
    metric: str = "rate",
    config: DisparityConfig = DisparityConfig(),
) -> MetricDisparity:
    """Disparity of a per-event 0/1 flag (NaN = missing) across groups."""
    return _metric_disparity(metric, "rate", groups, np.asarray(flags, dtype=np.float64), config)


def mean_disparity(
    groups: Sequence[Any] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    *,
    metric: str = "mean",
    config: DisparityConfig = DisparityConfig(),
) -> MetricDisparity:
    """Disparity of a per-event numeric value (NaN = missing) across groups."""
    return _metric_disparity(metric, "mean", groups, values, config)


def disparity_report(
    groups: Sequence[Any] | np.ndarray,
    *,
    toxic: Sequence[float | bool] | np.ndarray | None = None,
    sentiment: Sequence[float] | np.ndarray | None = None,
    negative_feedback: Sequence[float | bool] | np.ndarray | None = None,
    config: DisparityConfig = DisparityConfig(),
) -> DisparityReport:
    """Disparity of each metric given (toxic flag rate, mean sentiment, negative-feedback rate)."""
    metrics: list[MetricDisparity] = []
    if toxic is not None:
        metrics.append(rate_disparity(groups, toxic, metric="toxicity_rate", config=config))
    if sentiment is not None:
        metrics.append(mean_disparity(groups, sentiment, metric="sentiment", config=config))
    if negative_feedback is not None:
        metrics.append(
            rate_disparity(groups, negative_feedback, metric="negative_feedback_rate", config=config)
        )
    if not metrics:
        raise ValueError("give at least one of toxic, sentiment, negative_feedback")
    return DisparityReport(tuple(metrics))
