"""Sentiment of texts with VADER (the lexicon scorer the BOLD bias benchmark uses).

VADER's compound score is in [-1, 1]; the usual cut-offs are <= -0.05 negative, >= 0.05
positive (BOLD itself counts <= -0.5 / >= 0.5). It is a lexicon, so it is fast and offline but
blind to sarcasm and to negative content phrased in neutral words.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

NEGATIVE_COMPOUND = -0.05
POSITIVE_COMPOUND = 0.05


@lru_cache(maxsize=1)
def _analyzer() -> Any:
    # Building the analyzer parses the lexicon file (~tens of ms); the analyzer is read-only
    # afterwards, so one shared instance is safe.
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("sentiment scoring needs vaderSentiment: pip install vaderSentiment") from exc
    return SentimentIntensityAnalyzer()


def vader_compound(texts: Sequence[str | None]) -> np.ndarray:
    """VADER compound score per text, in [-1, 1]; NaN for a missing (None) text."""
    analyzer = _analyzer()
    out = np.full(len(texts), np.nan, dtype=np.float64)
    for i, text in enumerate(texts):
        if text is None:
            continue
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str or None")
        out[i] = analyzer.polarity_scores(text)["compound"]
    return out


def negative_flags(compound: Sequence[float] | np.ndarray, cutoff: float = NEGATIVE_COMPOUND) -> np.ndarray:
    """1.0 where the compound score is at or below ``cutoff``, 0.0 above it, NaN where missing."""
    x = np.asarray(compound, dtype=np.float64)
    return np.where(np.isfinite(x), (x <= cutoff).astype(np.float64), np.nan)
