"""Judges watched against people: the ``eval.<name>.agreement`` metric row and the default judge-health rules.

The row (one per window and segment): ``value`` = ROC AUC against thumbs/corrections on the window's labelled
events, ``n`` = how many, ``details`` = its interval, balanced accuracy with interval, class counts and the
baseline; ``flagged`` = agreement dropped significantly against the baseline (``agreement.degraded``) and
``p_value`` = that test's one-sided p. The baseline is the same evaluator version's labelled events in the
windows before (pooled), so a new rubric or model starts a new baseline, as its series does.

The default rules (created once per evaluator; edited or disabled rules are left alone):
``eval-<name>-agreement-dropped`` pages when ``flagged`` is true, ``eval-<name>-stopped`` when
``eval.<name>.coverage`` falls below the configured share.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from monitor.evaluators.agreement import Agreement, agreement, degraded
from monitor.pipeline.ops import MetricPoint

DEFAULT_ALPHA = 0.01
DEFAULT_MIN_DROP = 0.05  # an AUC drop smaller than this never pages, however many labels show it
DEFAULT_MIN_COVERAGE = 0.5


def agreement_metric(name: str) -> str:
    return f"eval.{name}.agreement"


def coverage_metric(name: str) -> str:
    return f"eval.{name}.coverage"


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)


def agreement_point(name: str, scores: ArrayLike, good: ArrayLike, *, good_when_high: bool, threshold: float,
                    baseline_scores: ArrayLike | None = None, baseline_good: ArrayLike | None = None,
                    alpha: float = DEFAULT_ALPHA, min_drop: float = DEFAULT_MIN_DROP) -> MetricPoint:
    """The agreement row of one window (and segment): arrays of the evaluator's values (NaN = unscored) and the
    human labels (True = good) of the same labelled events; optionally the baseline's."""
    metric = agreement_metric(name)
    current = agreement(np.asarray(scores, dtype=float), np.asarray(good, dtype=bool),
                        good_when_high=good_when_high, threshold=threshold)
    base: Agreement | None = None
    if baseline_scores is not None and baseline_good is not None and len(np.asarray(baseline_good)):
        base = agreement(np.asarray(baseline_scores, dtype=float), np.asarray(baseline_good, dtype=bool),
                         good_when_high=good_when_high, threshold=threshold)
    details: dict[str, object] = {
        "auc_low": _round(current.auc_low), "auc_high": _round(current.auc_high),
        "balanced_accuracy": _round(current.balanced_accuracy), "ba_low": _round(current.ba_low),
        "ba_high": _round(current.ba_high), "n_good": current.n_good, "n_bad": current.n_bad,
        "good_when_high": good_when_high,
    }
    if not current.sufficient:
        details["reason"] = f"{current.n_good} good and {current.n_bad} bad labelled events; need 5 of each"
        return MetricPoint(metric, "insufficient", current.n, details=details)
    flagged, p_value = False, None
    if base is not None and base.sufficient:
        verdict = degraded(current, base, alpha=alpha, min_drop=min_drop)
        flagged, p_value = verdict.degraded, verdict.p_value
        details.update({"baseline_auc": _round(base.auc), "baseline_n": base.n, "reason": verdict.reason})
    else:
        details["reason"] = "no baseline with enough labelled events yet"
    return MetricPoint(metric, "ok", current.n, value=_round(current.auc), p_value=_round(p_value),
                       threshold=_round(base.auc_low) if base is not None else None, flagged=flagged,
                       details=details)


def judge_health_rule_dicts(name: str, *, min_coverage: float = DEFAULT_MIN_COVERAGE) -> list[dict[str, object]]:
    """The two default rules of evaluator ``name``, as rule-file entries (``RuleSpec`` validates them)."""
    if not 0.0 < min_coverage <= 1.0:
        raise ValueError("min_coverage must be in (0, 1]")
    return [
        {"name": f"eval-{name}-agreement-dropped"[:64], "metric": agreement_metric(name), "field": "flagged",
         "comparator": "==", "threshold": 1, "severity": "warning",
         "description": f"Evaluator {name!r} agrees significantly less with users' thumbs and corrections than in "
                        "its baseline windows (default judge-health rule)."},
        {"name": f"eval-{name}-stopped"[:64], "metric": coverage_metric(name), "field": "value",
         "comparator": "<", "threshold": min_coverage, "severity": "warning",
         "description": f"Evaluator {name!r} scored less than {min_coverage:.0%} of its sampled events "
                        "(endpoint down, budget spent, or garbage replies; default judge-health rule)."},
    ]
