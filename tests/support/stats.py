"""Tolerances for the suite's statistical checks."""

from __future__ import annotations

import math


def fpr_bound(alpha: float, trials: int, sigmas: float = 3.0) -> float:
    """alpha + `sigmas` binomial standard deviations: the tolerance for a false-positive-rate check."""
    return alpha + sigmas * math.sqrt(alpha * (1 - alpha) / trials)
