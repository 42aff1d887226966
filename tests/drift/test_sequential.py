"""The sequential permutation stop of mmd and knn (Besag & Clifford 1991) and the cheaper exact parts of a window:
the stopped p-value is valid, a test that is not stopped gives exactly the fixed-count result, a stopped one is the
fixed-count run cut short (the same permutations, in the same order), and the bandwidth's faster median is the old
one to the bit."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.drift import knn as knn_module
from monitor.drift import mmd as mmd_module
from monitor.drift.knn import knn_test
from monitor.drift.mmd import (
    _exact_statistics,
    _median_sqrt,
    gram_bandwidth,
    mmd_test,
    permutation_p_value,
    pooled_gram,
    sequential_exceedances,
    sequential_p_value,
)
from tests.drift.conftest import unit_gaussian
from tests.support.stats import fpr_bound


def test_sequential_p_value_is_besag_clifford() -> None:
    permuted = np.array([0.1, 0.9, 0.2, 0.8, 0.95, 0.3])
    # Fewer than h at least as large: the fixed-count p-value.
    assert sequential_p_value(0.85, permuted, h=3) == permutation_p_value(0.85, permuted) == pytest.approx(3 / 7)
    # The 2nd permuted value >= 0.5 is the 4th drawn: p = h / L = 2 / 4, whatever follows.
    assert sequential_p_value(0.5, permuted, h=2) == pytest.approx(2 / 4)
    assert sequential_p_value(0.5, permuted, h=None) == permutation_p_value(0.5, permuted)
    # Ties with the observed value count (identical samples: p = 1).
    assert sequential_p_value(0.0, np.zeros(50), h=20) == 1.0


def test_sequential_h_keeps_every_stopped_p_above_twice_alpha() -> None:
    assert sequential_exceedances(0.01, 1000) == mmd_module.SEQUENTIAL_EXCEEDANCES == 20
    assert sequential_exceedances(0.05, 1000) == 100  # a stopped test's p >= 100/1000 = 2 x 0.05
    assert sequential_exceedances(0.01, 20) is None  # nothing to save: draw them all
    rng = np.random.default_rng(0)
    for _ in range(200):
        perms, observed = rng.random(1000), float(rng.random() ** 8)  # mostly small p-values
        p = sequential_p_value(observed, perms, 20)
        if np.count_nonzero(perms >= observed) >= 20:  # the sequential branch: p = h / L >= h / 1000
            assert p >= 0.02
        else:  # below that, the fixed-count p-value, unchanged
            assert p == permutation_p_value(observed, perms)


def test_sequential_p_value_is_valid_under_exchangeability() -> None:
    """Observed and permuted statistics exchangeable (i.i.d.): P(p <= u) <= u within binomial bounds, and not far
    below it (the stop costs little power)."""
    rng = np.random.default_rng(16)
    trials, n_perm, h = 4000, 1000, 20
    draws = rng.random((trials, n_perm + 1))
    p = np.array([sequential_p_value(float(row[0]), row[1:], h) for row in draws])
    for level in (0.005, 0.02, 0.05, 0.1, 0.3):
        share = float(np.mean(p <= level))
        assert share <= fpr_bound(level, trials), (level, share)
        assert share >= level - 3.0 * np.sqrt(level * (1 - level) / trials) - 1.0 / n_perm, (level, share)


def _same(a: dict[str, object], b: dict[str, object]) -> None:
    for key in ("permutations_drawn", "sequential_h"):
        a["details"].pop(key, None)  # type: ignore[attr-defined]
        b["details"].pop(key, None)  # type: ignore[attr-defined]
    assert a == b


@pytest.mark.parametrize("exact_max", [2000, 0], ids=["exact", "rff"])
def test_mmd_not_stopped_is_the_fixed_count_result(exact_max: int) -> None:
    rng = np.random.default_rng(1)
    ref, cur = unit_gaussian(rng, 600, 32), unit_gaussian(rng, 80, 32, shift=1.0)
    seq = mmd_test(ref, cur, seed=3, exact_max_per_side=exact_max, n_features=256)
    full = mmd_test(ref, cur, seed=3, exact_max_per_side=exact_max, n_features=256, sequential=False)
    assert seq.details["permutations_drawn"] == 1000 and seq.p_value is not None and seq.p_value < 0.01
    _same(seq.to_dict(), full.to_dict())


def test_mmd_stopped_is_the_fixed_count_run_cut_short() -> None:
    rng = np.random.default_rng(2)
    ref, cur = unit_gaussian(rng, 700, 32), unit_gaussian(rng, 90, 32)
    gram = pooled_gram(ref, cur)
    observed, full, _ = _exact_statistics(gram, 700, 0.7, 1000, np.random.default_rng(9))
    observed_s, short, _ = _exact_statistics(gram, 700, 0.7, 1000, np.random.default_rng(9), stop_at=20)
    assert observed_s == observed
    assert 200 <= short.size < 1000 and short.size % 200 == 0  # whole blocks of 200
    np.testing.assert_array_equal(short, full[: short.size])
    assert sequential_p_value(observed, short, 20) >= 0.02

    seq = mmd_test(ref, cur, seed=4)
    assert seq.details["permutations_drawn"] < 1000 and seq.p_value is not None and seq.p_value >= 0.02
    assert seq.to_dict() == mmd_test(ref, cur, seed=4).to_dict()  # same seed, same row


def test_knn_sequential_matches_the_fixed_count_run() -> None:
    rng = np.random.default_rng(3)
    ref = unit_gaussian(rng, 800, 24)
    shifted = np.concatenate([unit_gaussian(rng, 70, 24), unit_gaussian(rng, 30, 24, shift=3.0)])
    seq = knn_test(ref, shifted, seed=5)
    assert seq.details["permutations_drawn"] == 1000
    _same(seq.to_dict(), knn_test(ref, shifted, seed=5, sequential=False).to_dict())

    quiet = unit_gaussian(rng, 100, 24)
    short = knn_test(ref, quiet, seed=6)
    drawn = int(short.details["permutations_drawn"])
    assert knn_module._SEQUENTIAL_MIN <= drawn < 1000 and short.p_value is not None and short.p_value >= 0.02
    # The stopped run's null is the first `drawn` permutations of the full one: its moments and z come from them.
    cut = knn_test(ref, quiet, seed=6, sequential=False, n_permutations=drawn)
    assert short.details["z"] == cut.details["z"] and short.details["null_skew"] == cut.details["null_skew"]
    assert short.to_dict() == knn_test(ref, quiet, seed=6).to_dict()


def _whole_matrix_bandwidth(gram: np.ndarray, idx: np.ndarray) -> float:
    """The previous implementation: every ordered pair of the sampled rows, np.median."""
    sub = gram[np.ix_(idx, idx)].astype(np.float64)
    sq = np.diag(sub).copy()
    scale = sq[:, None] + sq[None, :]
    d2 = scale - 2.0 * sub
    d2 = d2[d2 > 1e-5 * np.maximum(scale, 1e-300)]
    return float(np.median(np.sqrt(d2))) if d2.size else 0.0


def test_bandwidth_from_the_upper_triangle_is_the_whole_matrix_median() -> None:
    rng = np.random.default_rng(4)
    for trial in range(30):
        m, n, dim = int(rng.integers(20, 400)), int(rng.integers(10, 150)), int(rng.integers(2, 48))
        ref, cur = rng.standard_normal((m, dim)).astype(np.float32), rng.standard_normal((n, dim)).astype(np.float32)
        if trial % 3 == 0:
            cur[: min(m, n) // 2] = ref[: min(m, n) // 2]  # duplicates across the sides
        if trial % 7 == 0:
            ref[:] = ref[0]  # a constant reference
        gram = pooled_gram(ref, cur)
        assert np.array_equal(gram, gram.T)  # what the upper triangle relies on
        idx = rng.choice(m + n, int(rng.integers(2, m + n + 1)), replace=False)
        assert gram_bandwidth(gram, idx) == _whole_matrix_bandwidth(gram, idx)
    same = pooled_gram(np.ones((5, 3), np.float32), np.ones((4, 3), np.float32))
    assert gram_bandwidth(same, np.arange(9)) == 0.0


@pytest.mark.parametrize("size", [0, 1, 2, 7, 10, 1001])
def test_median_sqrt_is_numpys(size: int) -> None:
    x = np.random.default_rng(size).random(size) * 10.0
    assert _median_sqrt(x) == (float(np.median(np.sqrt(x))) if size else 0.0)
