"""Batched scoring shared by every toxicity backend (its own module: the scorer factory in `toxicity` imports
the backends, and the backends must not import it back)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def score_in_batches(
    texts: Sequence[str | None],
    batch_size: int,
    predict: Callable[[list[str]], Sequence[float] | np.ndarray],
) -> np.ndarray:
    """Run ``predict`` over the non-missing texts in batches; NaN where a text is None.

    Shared by every backend so they agree on missing texts, output dtype and range.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out = np.full(len(texts), np.nan, dtype=np.float64)
    present: list[int] = []
    for i, text in enumerate(texts):
        if text is None:
            continue
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str or None")
        present.append(i)
    for start in range(0, len(present), batch_size):
        idx = present[start : start + batch_size]
        probs = np.asarray(predict([texts[i] for i in idx]), dtype=np.float64).reshape(-1)  # type: ignore[misc]
        if probs.shape[0] != len(idx):
            raise RuntimeError(f"toxicity backend returned {probs.shape[0]} scores for {len(idx)} texts")
        out[idx] = np.clip(probs, 0.0, 1.0)
    return out
