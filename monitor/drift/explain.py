"""Explain embedding drift: which clusters of items grew from the reference to the current window.

When a detector fires, a person wants to see *what* changed, not a number. We cluster the pooled
embeddings (MiniBatchKMeans, seeded, k modest so each cluster is readable), compare each cluster's
share of the reference with its share of the current window, and return the clusters that grew
most, each with example current items (the caller maps the indices back to prompt texts).

Examples are the items that *are* the growth: a cluster often holds a known topic and a new one beside it
(k is small so clusters stay readable), and the members nearest its centroid can then be the known topic's,
which tells the operator nothing. So each current member is ranked first by how many of its nearest
neighbours inside the cluster are current items (a new topic's items have current neighbours, a known
topic's have reference ones), then by distance to the centroid; identical items are shown once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sklearn.cluster import MiniBatchKMeans

from monitor.drift._validate import check_pair, subsample


@dataclass(frozen=True)
class ClusterShift:
    cluster: int
    share_reference: float
    share_current: float
    lift: float
    """share_current / share_reference, the reference share floored at half an item (0.5 / n_reference)
    so a cluster absent from the reference gets a large but finite lift."""
    n_reference: int
    n_current: int
    example_indices: tuple[int, ...]
    """Row indices into `current` of the cluster's most window-specific items (most current neighbours within
    the cluster first, then closest to the centre; identical rows once)."""
    member_indices: tuple[int, ...] = field(default=(), repr=False)
    """Row indices into `current` of every item in the cluster (stored as the cluster's events, not in the
    metric row's details: see `to_dict`)."""

    @property
    def growth(self) -> float:
        return self.share_current - self.share_reference


@dataclass(frozen=True)
class DriftExplanation:
    n_clusters: int
    clusters: tuple[ClusterShift, ...]
    """Clusters whose share grew, largest growth first (at most `top`)."""
    total_variation: float
    """Half the sum of |share change| over all clusters: the share of the window that moved."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_clusters": self.n_clusters,
            "total_variation": self.total_variation,
            "clusters": [
                {k: v for k, v in asdict(c).items() if k != "member_indices"}
                | {"growth": c.growth, "example_indices": list(c.example_indices)}
                for c in self.clusters
            ],
        }


def explain_drift(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    n_clusters: int = 12,
    top: int = 3,
    n_examples: int = 5,
    seed: int = 0,
    max_fit_samples: int = 20_000,
    min_samples: int = 20,
    min_z: float = 3.0,
) -> DriftExplanation:
    """Cluster pooled embeddings and report the clusters whose share grew most (see module doc).

    The cluster that grew most is always reported; the next ones only when their growth is larger than
    sampling noise (a two-proportion z of at least `min_z`). Without that, a quiet topic that happened to
    grow by a few items was shown to the operator beside the real shift, as if it were part of it.

    k is `n_clusters` (default 12) but never more than a tenth of the pooled items, so small windows
    still get clusters of ~10 items. The k-means fit uses at most `max_fit_samples` pooled rows.
    """
    if n_clusters < 2:
        raise ValueError(f"n_clusters must be at least 2, got {n_clusters}")
    if top < 1 or n_examples < 1:
        raise ValueError("top and n_examples must be positive")
    ref, cur = check_pair(reference, current, kind="embedding", min_samples=min_samples)
    m, n = ref.shape[0], cur.shape[0]
    pooled = np.concatenate([ref, cur]).astype(np.float32)
    rng = np.random.default_rng(seed)
    k = max(2, min(n_clusters, (m + n) // 10))
    model = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=1024)
    model.fit(subsample(pooled, max_fit_samples, rng))
    labels = model.predict(pooled)
    ref_counts = np.bincount(labels[:m], minlength=k)
    cur_labels = labels[m:]
    cur_counts = np.bincount(cur_labels, minlength=k)
    ref_share, cur_share = ref_counts / m, cur_counts / n
    growth = cur_share - ref_share
    lift = cur_share / np.maximum(ref_share, 0.5 / m)
    pooled_share = (ref_counts + cur_counts) / (m + n)
    noise = np.sqrt(np.maximum(pooled_share * (1 - pooled_share), 1e-12) * (1 / m + 1 / n))
    z = growth / noise

    shifts: list[ClusterShift] = []
    for cluster in np.argsort(-growth, kind="stable")[:top]:
        if growth[cluster] <= 0 or (shifts and z[cluster] < min_z):
            break
        members = np.flatnonzero(cur_labels == cluster)
        ref_members = np.flatnonzero(labels[:m] == cluster)
        nearest = _examples(ref[ref_members], cur, members, model.cluster_centers_[cluster], n_examples, rng)
        shifts.append(
            ClusterShift(
                cluster=int(cluster),
                share_reference=float(ref_share[cluster]),
                share_current=float(cur_share[cluster]),
                lift=float(lift[cluster]),
                n_reference=int(ref_counts[cluster]),
                n_current=int(cur_counts[cluster]),
                example_indices=tuple(int(i) for i in nearest),
                member_indices=tuple(int(i) for i in members),
            )
        )
    return DriftExplanation(
        n_clusters=k, clusters=tuple(shifts), total_variation=float(0.5 * np.abs(growth).sum())
    )


_NEIGHBOURS = 5
_MAX_CANDIDATES = 2_000  # current members ranked per cluster (nearest the centre): a bounded distance matrix


def _examples(ref_vectors: np.ndarray, cur: np.ndarray, members: np.ndarray, centre: np.ndarray,
              n_examples: int, rng: np.random.Generator) -> np.ndarray:
    """Indices into `cur` of up to `n_examples` distinct members, ranked as the module doc says."""
    vectors = cur[members].astype(np.float32)
    order = np.argsort(np.linalg.norm(vectors - centre, axis=1), kind="stable")[:_MAX_CANDIDATES]
    members, vectors = members[order], vectors[order]
    if ref_vectors.shape[0] > _MAX_CANDIDATES:
        ref_vectors = ref_vectors[np.sort(rng.choice(ref_vectors.shape[0], _MAX_CANDIDATES, replace=False))]
    n_ref = ref_vectors.shape[0]
    pool = np.concatenate([ref_vectors.astype(np.float32), vectors])
    k = min(_NEIGHBOURS, pool.shape[0] - 1)
    current_neighbours = np.zeros(members.shape[0])
    if k > 0 and n_ref > 0:
        sq = (vectors**2).sum(1)[:, None] + (pool**2).sum(1)[None, :] - 2.0 * vectors @ pool.T
        sq[np.arange(members.shape[0]), n_ref + np.arange(members.shape[0])] = np.inf  # not itself
        nearest = np.argpartition(sq, k - 1, axis=1)[:, :k]
        current_neighbours = (nearest >= n_ref).sum(1)
    ranked = np.argsort(-current_neighbours, kind="stable")  # ties keep the distance order
    chosen: list[int] = []
    for i in ranked:
        if len(chosen) == n_examples:
            break
        if not any(np.array_equal(vectors[i], vectors[j]) for j in chosen):
            chosen.append(int(i))
    return members[chosen]
