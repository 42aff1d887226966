"""Shared helpers for the drift tests: samplers and (for slow tests) real MiniLM embeddings."""

from __future__ import annotations

import numpy as np
import pytest


def unit_gaussian(rng: np.random.Generator, n: int, dim: int = 384, shift: float = 0.0) -> np.ndarray:
    """L2-normalised Gaussian rows (like sentence embeddings); `shift` moves the first coordinate."""
    x = rng.standard_normal((n, dim)).astype(np.float32)
    x[:, 0] += shift
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="session")
def query_embeddings() -> dict[str, np.ndarray]:
    """Topic -> MiniLM embeddings of the shipped calibration queries (~3-10 s, once per session)."""
    from monitor.drift.calibration import embed_texts, load_queries

    pools = load_queries()
    texts = [t for topic in pools for t in pools[topic]]
    vectors = embed_texts(texts)
    out: dict[str, np.ndarray] = {}
    start = 0
    for topic, items in pools.items():
        out[topic] = vectors[start : start + len(items)]
        start += len(items)
    return out


BASE_TOPICS = ("programming", "cooking", "travel", "personal_finance")


@pytest.fixture(scope="session")
def base_pool(query_embeddings: dict[str, np.ndarray]) -> np.ndarray:
    """The 'normal traffic' pool: four topics mixed."""
    return np.concatenate([query_embeddings[t] for t in BASE_TOPICS])
