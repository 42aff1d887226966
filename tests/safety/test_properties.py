"""Property-based checks of the pure pieces (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from monitor.safety.hf_toxicity import toxic_probability
from monitor.safety.permutation import max_gap_pvalue
from monitor.safety.toxicity import toxicity_summary

finite = st.floats(-50, 50, allow_nan=False)


@given(
    arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 5)), elements=finite),
    st.booleans(),
    st.data(),
)
def test_toxic_probability_is_a_probability(logits: np.ndarray, multi: bool, data: st.DataObject) -> None:
    k = logits.shape[1]
    idx = data.draw(st.lists(st.integers(0, k - 1), min_size=1, max_size=k, unique=True))
    p = toxic_probability(logits, idx, multi_label=multi)
    assert p.shape == (logits.shape[0],)
    assert np.all((p >= 0) & (p <= 1))
    if not multi and k > 1 and len(idx) == k:
        np.testing.assert_allclose(p, 1.0)  # all classes toxic: softmax mass is 1


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.floats(-5, 5)), min_size=8, max_size=60),
    st.integers(0, 2**32 - 1),
)
def test_permutation_pvalue_valid_and_label_invariant(events: list[tuple[int, float]], seed: int) -> None:
    codes = np.array([c for c, _ in events])
    values = np.array([v for _, v in events])
    _, codes = np.unique(codes, return_inverse=True)  # make codes 0..k-1, all present
    if codes.max() == 0:
        return
    p = max_gap_pvalue(codes, values, n_permutations=99, rng=np.random.default_rng(seed))
    assert 0.01 <= p <= 1.0
    # Renaming the groups does not change the statistic or its null distribution.
    renamed = codes.max() - codes
    q = max_gap_pvalue(renamed, values, n_permutations=99, rng=np.random.default_rng(seed))
    assert abs(p - q) <= 0.35  # same distribution, different random draws: loose but falsifiable
    # Shifting all values by a constant changes nothing at all (same draws, same statistic).
    shifted = max_gap_pvalue(codes, values + 3.0, n_permutations=99, rng=np.random.default_rng(seed))
    assert shifted == p or values.std() == 0


@given(arrays(np.float64, st.integers(0, 50), elements=st.floats(0, 1)), st.floats(0, 1))
def test_summary_bounds(scores: np.ndarray, threshold: float) -> None:
    s = toxicity_summary(scores, threshold)
    assert s.n == scores.size
    if s.n:
        assert 0 <= s.rate_ci_low <= s.rate <= s.rate_ci_high <= 1
        assert 0 <= s.mean <= 1
