"""The public query pools behind the drift benchmarks (monitor/drift/calibration.py, bench/data): the full HWU64
extract, and the draws that keep a reference and its windows free of shared queries. Text-only: no embeddings."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from bench.quiet_month import Simulator
from monitor.drift.calibration import (
    IntentPool,
    cyclic_disjoint_sample,
    query_key,
    read_extract,
    split_intent_rows,
)


def _text_pool(name: str) -> IntentPool:
    rows = read_extract(name)
    return IntentPool(tuple(r[0] for r in rows), np.array([r[1] for r in rows]), np.array([r[2] for r in rows]),
                      np.zeros((len(rows), 1), dtype=np.float32))


@pytest.fixture(scope="module")
def full() -> IntentPool:
    return _text_pool("hwu64_full")


def test_hwu64_full_extract_rows_intents_and_texts() -> None:
    rows = read_extract("hwu64_full")
    # KFold_1 train + test is 9,960 + 1,076 = 11,036 rows; 3 differ from another only in case or spacing.
    assert len(rows) == 11_033
    assert all(len(r) == 3 and r[0].strip() == r[0] and r[0] for r in rows)
    assert len({query_key(r[0]) for r in rows}) == len(rows)  # no verbatim repeats, up to MiniLM's casing
    intents = Counter(r[1] for r in rows)
    assert len(intents) == 64 and min(intents.values()) == 38 and max(intents.values()) == 194
    assert len({r[2] for r in rows}) == 18
    assert all(r[1].startswith(r[2] + "_") for r in rows)  # intent = scenario_intent, domain = scenario
    # Same labels as the 3,503-row extract, and its queries are in it (bar one case-only duplicate).
    small = read_extract("hwu64")
    assert {r[1] for r in small} == set(intents)
    keys = {query_key(r[0]) for r in rows}
    assert sum(query_key(r[0]) not in keys for r in small) == 0


def test_split_intent_rows_is_disjoint_complete_and_seeded(full: IntentPool) -> None:
    ref, live = split_intent_rows(full, seed=30)
    assert set(ref) == set(live) == set(full.intents.tolist())
    for name in ref:
        assert not set(ref[name]) & set(live[name])
        both = np.concatenate([ref[name], live[name]])
        assert sorted(both.tolist()) == np.flatnonzero(full.intents == name).tolist()
        assert 0 <= live[name].size - ref[name].size <= 1
    again, _ = split_intent_rows(full, seed=30)
    other, _ = split_intent_rows(full, seed=31)
    assert all(np.array_equal(ref[n], again[n]) for n in ref)
    assert any(not np.array_equal(ref[n], other[n]) for n in ref)


def test_quiet_month_reference_and_windows_share_no_query(full: IntentPool) -> None:
    sim = Simulator(full, segments=8, seed=30)
    ref = np.concatenate([np.concatenate(sim.events(-1.0 + w / 288, -1.0 + (w + 1) / 288, 1000, 0.0, key=10**6 + w,
                                                    side="reference")[:2]) for w in range(0, 288, 24)])
    live = np.concatenate([np.concatenate(sim.events(w / 288, (w + 1) / 288, 1000, shift, key=w)[:2])
                           for w, shift in ((0, 0.0), (100, 0.0), (5760, 0.15))])
    ref_keys = {query_key(full.texts[i]) for i in ref}
    assert not any(query_key(full.texts[i]) in ref_keys for i in live)
    # The earlier simulator (one pool for both) repeats most of a window's queries: the check can fail.
    shared = Simulator(full, segments=8, seed=30, disjoint=False)
    day = np.concatenate([shared.events(-1.0 + w / 288, -1.0 + (w + 1) / 288, 1000, 0.0, key=10**6 + w,
                                        side="reference")[0] for w in range(0, 288, 24)])
    window = shared.events(0.0, 1 / 288, 1000, 0.0, key=0)[0]
    assert np.isin(window, day).mean() > 0.3


def test_cyclic_disjoint_sample_shares_no_query_between_reference_and_window(full: IntentPool) -> None:
    rng = np.random.default_rng(16)
    for seed in range(5):
        ref_times = np.sort(rng.random(8000))
        cur_times = (rng.random() + rng.random(1000) / 288.0) % 1.0
        draw = cyclic_disjoint_sample(full, ref_times, cur_times, amplitude=0.5, rng=rng, seed=seed)
        assert draw.reference.size == 8000 and draw.window.size == 1000
        assert not set(draw.reference.tolist()) & set(draw.window.tolist())
        assert np.unique(draw.window).size == 1000
        # Repeats inside the reference only where an intent ran out, and counted exactly.
        assert 8000 - np.unique(draw.reference).size == draw.reference_repeats
        assert draw.reference_repeats < 80  # < 1% of the day (a few small intents at their peak)
