"""Seeded window sampling (monitor/pipeline/sampling.py): uniform, stable as a window grows, and the
mask form agrees with the id form."""

from __future__ import annotations

import numpy as np

from monitor.pipeline.sampling import event_ranks, sample_ids, sample_mask


def test_mask_and_ids_pick_the_same_events() -> None:
    rng = np.random.default_rng(0)
    ids = np.sort(rng.choice(10**9, size=5000, replace=False))
    segment = rng.random(5000) < 0.3
    ranks = event_ranks(ids, salt=7)
    picked = sample_mask(ranks, segment, 400)
    assert picked.sum() == 400 and not (picked & ~segment).any()
    assert np.array_equal(ids[picked], sample_ids(ids[segment], 400, salt=7))
    assert np.array_equal(sample_mask(ranks, segment, 10_000), segment)  # a small segment keeps everything


def test_a_growing_window_keeps_most_of_its_sample() -> None:
    ids = np.arange(1, 100_001)
    before = sample_ids(ids, 5000, salt=3)
    after = sample_ids(np.arange(1, 110_001), 5000, salt=3)  # 10% more events arrived
    kept = np.intersect1d(before, after).size / 5000
    assert 0.85 < kept < 0.95, kept  # expected 100/110 = 0.909: only the displaced share is new


def test_sampled_rates_are_unbiased_and_their_intervals_hold() -> None:
    """Over many windows with a 7% attribute, the sample estimate's 95% interval covers the window's true
    rate about 95% of the time (the sample behaves as a simple random sample), and on average it is exact."""
    rng = np.random.default_rng(42)
    misses, errors = 0, []
    trials, k = 400, 1000
    for t in range(trials):
        ids = np.sort(rng.choice(2**40, size=20_000, replace=False))
        flag = rng.random(ids.size) < 0.07
        truth = flag.mean()
        est = flag[np.isin(ids, sample_ids(ids, k, salt=t))].mean()
        se = np.sqrt(truth * (1 - truth) / k * (1 - k / ids.size))
        misses += abs(est - truth) > 1.96 * se
        errors.append(est - truth)
    assert 0.02 <= misses / trials <= 0.085, misses / trials
    assert abs(np.mean(errors)) < 3 * np.std(errors) / np.sqrt(trials)


def test_consecutive_ids_are_sampled_evenly() -> None:
    """Ids are sequential in practice; the sample must not favour a stretch of them (e.g. the oldest events)."""
    ids = np.arange(1_000_000, 1_200_000)
    picked = sample_ids(ids, 10_000, salt=5)
    counts, _ = np.histogram(picked, bins=10, range=(ids[0], ids[-1] + 1))
    expected = 1000
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 27.9, (counts, chi2)  # 99.9th percentile of chi-square with 9 degrees of freedom
