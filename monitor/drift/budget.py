"""A false-page budget across one window's embedding-drift tests: Benjamini-Hochberg.

A project with 12 segments, 2 text fields and 2 default methods runs 48 embedding-drift tests per
window, ~14,000 a day at 5-minute windows. Judged one by one at alpha = 0.01, a quiet day would flag
about 140 rows. The budget has two parts:

1. **Within a window: Benjamini-Hochberg (1995) at `drift_alpha`** over every embedding-drift row of
   the window (segments x fields x methods), on the calibrated p-values. On a quiet window all nulls
   are true, and then BH's false-discovery rate *is* the family-wise error rate: the probability that
   the window flags anything at all is at most alpha (0.01), whatever the number of segments, instead
   of up to #tests x alpha. BH holds under independence and under positive regression dependence
   (PRDS), which the tests of one window have: segments overlap the `all` segment and the two methods
   and fields look at the same events, and their statistics grow together under drift. On a drifting
   window BH keeps much more power than Bonferroni: once one row is clearly significant the others are
   judged at larger thresholds (k·alpha/m).
2. **Across windows: the alert rule's `for_windows`** (consecutive breaching windows before a page).
   Quiet windows flag with probability <= alpha each, close to independently once the calibration has
   absorbed the traffic's own slow variation, so a page needing `for_windows = 2` consecutive flagged
   windows has a rate of about alpha² per window: 8,640 five-minute windows a month x 0.01² ≈ 0.9
   false pages per project-month at the upper bound (each window's chance of flagging is at most alpha,
   and in practice well below it: bench/quiet_month.py). A real shift flags every window, so
   persistence costs one window of delay.

Pure functions: p-values in, adjusted p-values and decisions out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bh_adjust(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (step-up, monotone, capped at 1), in the input's order.

    Row i is a discovery at level q exactly when its adjusted p-value is <= q.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError("p_values must be one-dimensional")
    if p.size == 0:
        return p.copy()
    if not np.all((p >= 0.0) & (p <= 1.0)):
        raise ValueError("p-values must lie in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def bh_decisions(p_values: Sequence[float] | np.ndarray, alpha: float) -> np.ndarray:
    """Which hypotheses BH rejects at false-discovery rate `alpha`."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return bh_adjust(p_values) <= alpha


def monthly_false_pages(alpha: float, for_windows: int, window_seconds: int, days: float = 30.0) -> float:
    """Upper bound on false pages per period if each quiet window flags with probability alpha,
    independently: (windows in the period) x alpha^for_windows."""
    if for_windows < 1 or window_seconds < 1:
        raise ValueError("for_windows and window_seconds must be positive")
    return days * 86_400 / window_seconds * alpha**for_windows
