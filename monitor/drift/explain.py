"""Explain embedding drift: which clusters of items grew from the reference to the current window.

When a detector fires, a person wants to see *what* changed, not a number. We cluster the pooled
embeddings (MiniBatchKMeans, seeded, k modest so each cluster is readable), compare each cluster's
share of the reference with its share of the current window, and return the clusters that grew
most, each with the current items nearest to its centroid (the caller maps the indices back to
prompt texts).
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
    """Row indices into `current` of the items closest to the cluster centre, closest first."""
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
        dists = np.linalg.norm(cur[members].astype(np.float32) - model.cluster_centers_[cluster], axis=1)
        nearest = members[np.argsort(dists, kind="stable")[:n_examples]]
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
