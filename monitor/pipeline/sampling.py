"""Seeded, stable sampling of a window's events, shared by the stages that cannot afford every event.

Each event has a fixed pseudo-random rank (a hash of its id and a salt); a sample of size k keeps the k lowest
ranks. So the samples of a segment, of the whole window and of the window as it grows share most of their
events: a recomputation only has to embed or score what the new events brought in.
"""

from __future__ import annotations

import hashlib

import numpy as np

from monitor.drift.thresholds import run_bounds


def stable_seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:4], "little")


def event_ranks(ids: np.ndarray, salt: int) -> np.ndarray:
    """splitmix64 of each id: a fixed pseudo-random rank per event."""
    offset = np.uint64((salt * 0x9E3779B97F4A7C15) % 2**64)  # in Python ints: numpy warns on scalar wrap-around
    z = ids.astype(np.uint64) + offset
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def sample_ids(ids: np.ndarray, limit: int, salt: int) -> np.ndarray:
    """At most `limit` of `ids`, in id order: a uniform sample, the same one every time for the same events."""
    ids = np.sort(ids)
    if ids.shape[0] <= limit:
        return ids
    keep = np.argpartition(event_ranks(ids, salt), limit)[:limit]
    return np.sort(ids[keep])


def run_sample(ids: np.ndarray, limit: int, runs: int) -> np.ndarray:
    """At most `limit` of `ids`, in id order: `runs` evenly spaced runs of consecutive events (equal lengths, the
    first `limit % runs` one longer), all of `ids` when they fit.

    The drift reference is sampled this way, not uniformly: the calibration (monitor/drift/thresholds.py) compares
    window-sized pieces of the reference with the rest to measure how much the traffic moves between windows. In a
    uniform sample of a long reference, a piece of consecutive sample rows spans far more time than a window (2,500
    of 20,000 rows of a pinned day: 3 hours), which averages away the variation a 5-minute window carries, so the
    calibration saw too little of it. Runs of consecutive events keep full density inside each run, and evenly
    spaced runs still cover the whole reference (its daily cycle, say). Deterministic: no salt.
    """
    ids = np.sort(ids)
    n = int(ids.shape[0])
    if n <= limit:
        return ids
    if limit < 1 or runs < 1:
        raise ValueError(f"limit and runs must be positive, got {limit} and {runs}")
    runs = min(runs, limit)
    offsets, lengths = run_bounds(limit, runs)  # the calibration finds the runs again the same way
    gap = (n - limit) / (runs - 1) if runs > 1 else 0.0  # the skipped events, spread evenly between runs
    starts = offsets + np.round(np.arange(offsets.size) * gap).astype(np.int64)
    return ids[np.concatenate([np.arange(st, st + ln) for st, ln in zip(starts, lengths, strict=True)])]


def sample_mask(ranks: np.ndarray, mask: np.ndarray, limit: int) -> np.ndarray:
    """The events of `mask` that `sample_ids` would keep, as a mask: the `limit` lowest ranks within it."""
    n = int(mask.sum())
    if n <= limit:
        return mask.copy()
    inside = ranks[mask]
    cutoff = np.partition(inside, limit - 1)[limit - 1]
    return mask & (ranks <= cutoff)
