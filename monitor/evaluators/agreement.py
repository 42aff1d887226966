"""How well an evaluator agrees with the people using the app: pure functions, arrays in, frozen results out.

Every evaluator has a direction against human feedback (``good_when_high``: relevance high = good answer,
refusal high = bad answer). Feedback on the same events gives a binary "good" label per event (a thumbs up is
good; a thumbs down or a correction is bad). Agreement is then:

- **ROC AUC** of the evaluator's score, oriented so that 1.0 means "every good answer scored better than every
  bad one" and 0.5 means "no better than chance", with a DeLong interval (computed on the logit scale so it
  stays inside (0, 1) and does not collapse to a point near 1 with few labels);
- **balanced accuracy** of the evaluator's thresholded decision (mean of the two class recalls), with an
  Agresti-Caffo style interval (add one success and one failure per class), which behaves at 0 and 1;
- **n**, how many labelled events it rests on (and per class).

Why these: AUC is threshold-free (a judge whose scores drift up uniformly keeps its AUC, and a judge that stops
telling good from bad loses it), and balanced accuracy says whether the threshold in use still makes sense.
Neither depends on the share of thumbs-down, which moves with traffic rather than with the judge.

``degraded`` compares a window against a baseline (the evaluator's own earlier windows) with a one-sided
z-test on the AUC difference (independent samples, DeLong variances), so on windows drawn from the same
distribution it pages at most at the nominal rate ``alpha``. ``stopped`` says an evaluator stopped producing
scores (coverage below the configured share).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

# Below this many labels of either class, AUC and balanced accuracy are not reported (status insufficient).
MIN_PER_CLASS = 5


@dataclass(frozen=True)
class Agreement:
    """Agreement of one evaluator with human labels on one set of events."""

    n: int  # labelled events with a score
    n_good: int
    n_bad: int
    auc: float | None
    auc_low: float | None
    auc_high: float | None
    auc_se: float | None  # DeLong standard error of the AUC (used by `degraded`)
    balanced_accuracy: float | None
    ba_low: float | None
    ba_high: float | None
    threshold: float
    good_when_high: bool

    @property
    def sufficient(self) -> bool:
        return self.auc is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Degradation:
    """Whether agreement dropped significantly compared with a baseline."""

    degraded: bool
    p_value: float | None  # one-sided: small when the current AUC is below the baseline's
    drop: float | None  # baseline AUC minus current AUC
    reason: str


def human_good(positive: bool | None, corrected: bool) -> bool | None:
    """One event's label from its feedback: a correction is always negative; else the thumbs decide."""
    if corrected:
        return False
    return positive


def _midranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (what the Mann-Whitney U statistic needs)."""
    return np.asarray(stats.rankdata(x, method="average"), dtype=np.float64)


def delong_auc(pos: ArrayLike, neg: ArrayLike) -> tuple[float, float]:
    """AUC = P(pos > neg) + 0.5 P(tie) and its DeLong variance (DeLong et al. 1988; Sun & Xu 2014's fast form)."""
    p = np.asarray(pos, dtype=np.float64)
    q = np.asarray(neg, dtype=np.float64)
    m, n = p.size, q.size
    if m == 0 or n == 0:
        raise ValueError("need at least one score in each class")
    all_ranks = _midranks(np.concatenate([p, q]))
    rp, rq = _midranks(p), _midranks(q)
    auc = float((all_ranks[:m].sum() - m * (m + 1) / 2) / (m * n))
    v10 = (all_ranks[:m] - rp) / n  # per positive: share of negatives it beats
    v01 = 1.0 - (all_ranks[m:] - rq) / m  # per negative: share of positives that beat it
    s10 = float(np.var(v10, ddof=1)) if m > 1 else 0.0
    s01 = float(np.var(v01, ddof=1)) if n > 1 else 0.0
    return auc, s10 / m + s01 / n


def _hanley_mcneil_var(auc: float, m: int, n: int) -> float:
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    return (auc * (1 - auc) + (m - 1) * (q1 - auc * auc) + (n - 1) * (q2 - auc * auc)) / (m * n)


def auc_interval(auc: float, var: float, m: int, n: int, confidence: float = 0.95) -> tuple[float, float, float]:
    """(low, high, se): a logit-scale interval. With perfect or zero-variance separation, DeLong's variance is 0;
    then the Hanley-McNeil variance at a continuity-corrected AUC keeps the interval honest about small n."""
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    if var <= 0.0 or auc <= 0.0 or auc >= 1.0:
        corrected = (auc * m * n + 0.5) / (m * n + 1)
        var = max(var, _hanley_mcneil_var(corrected, m, n))
        a = corrected
    else:
        a = auc
    se = math.sqrt(var)
    logit = math.log(a / (1 - a))
    half = z * se / (a * (1 - a))  # delta method: d logit / d a = 1 / (a (1 - a))
    low, high = 1 / (1 + math.exp(-(logit - half))), 1 / (1 + math.exp(-(logit + half)))
    return min(low, auc), max(high, auc), se


def _ba_interval(tp: int, n_good: int, tn: int, n_bad: int, confidence: float) -> tuple[float, float]:
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    pg, pb = (tp + 1) / (n_good + 2), (tn + 1) / (n_bad + 2)  # Agresti-Caffo: one success and failure added
    centre = (pg + pb) / 2
    half = z * math.sqrt(pg * (1 - pg) / (n_good + 2) + pb * (1 - pb) / (n_bad + 2)) / 2
    return max(0.0, centre - half), min(1.0, centre + half)


def agreement(scores: ArrayLike, good: Sequence[bool] | np.ndarray, *, good_when_high: bool, threshold: float,
              confidence: float = 0.95, min_per_class: int = MIN_PER_CLASS) -> Agreement:
    """Agreement of ``scores`` (the evaluator's values, NaN = not scored) with ``good`` (human labels, same
    events, same order). Unscored events are left out; fewer than ``min_per_class`` labels in either class gives
    an Agreement with only the counts (``sufficient`` False)."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    g = np.asarray(good, dtype=bool).reshape(-1)
    if s.shape != g.shape:
        raise ValueError(f"need one label per score: {s.size} scores, {g.size} labels")
    keep = np.isfinite(s)
    s, g = s[keep], g[keep]
    n_good, n_bad = int(g.sum()), int((~g).sum())
    empty = Agreement(n_good + n_bad, n_good, n_bad, None, None, None, None, None, None, None, float(threshold),
                      good_when_high)
    if min(n_good, n_bad) < max(1, min_per_class):
        return empty
    oriented = s if good_when_high else -s  # higher = "the evaluator thinks this answer is good"
    auc, var = delong_auc(oriented[g], oriented[~g])
    low, high, se = auc_interval(auc, var, n_good, n_bad, confidence)
    says_good = s >= threshold if good_when_high else s < threshold
    tp, tn = int((says_good & g).sum()), int((~says_good & ~g).sum())
    ba = (tp / n_good + tn / n_bad) / 2
    ba_low, ba_high = _ba_interval(tp, n_good, tn, n_bad, confidence)
    return Agreement(n_good + n_bad, n_good, n_bad, auc, low, high, se, ba, ba_low, ba_high, float(threshold),
                     good_when_high)


def degraded(current: Agreement, baseline: Agreement, *, alpha: float = 0.01, min_drop: float = 0.0) -> Degradation:
    """One-sided test that the current AUC is below the baseline's: z = (base - cur) / sqrt(se_b^2 + se_c^2).

    The two windows hold different events, so the AUCs are independent and their DeLong variances add. A
    ``min_drop`` (e.g. 0.05) keeps a huge window from paging for a drop nobody cares about."""
    if not 0.0 < alpha < 0.5:
        raise ValueError("alpha must be in (0, 0.5)")
    if not (current.sufficient and baseline.sufficient):
        return Degradation(False, None, None, "too few labelled events of each class to compare")
    assert current.auc is not None and baseline.auc is not None
    assert current.auc_se is not None and baseline.auc_se is not None
    drop = baseline.auc - current.auc
    se = math.hypot(current.auc_se, baseline.auc_se)
    p = float(stats.norm.sf(drop / se)) if se > 0 else (0.0 if drop > 0 else 1.0)
    hit = p < alpha and drop > min_drop
    verdict = "dropped significantly" if hit else "no significant drop"
    return Degradation(hit, p, drop, f"AUC {current.auc:.3f} vs baseline {baseline.auc:.3f}: {verdict} "
                                     f"(one-sided p={p:.3g}, alpha={alpha:g})")


def stopped(coverage: float | None, min_share: float) -> bool:
    """True when an evaluator scored less than ``min_share`` of the events it was given (None = nothing given:
    not a stop, there was nothing to score)."""
    if not 0.0 <= min_share <= 1.0:
        raise ValueError("min_share must be in [0, 1]")
    return coverage is not None and coverage < min_share
