from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from monitor.drift import InsufficientDataError
from monitor.drift.mmd import mmd_test, permutation_p_value
from tests.drift.conftest import unit_gaussian
from tests.support.stats import fpr_bound

TRIALS = 200


@pytest.mark.parametrize(
    ("path", "n", "extra"),
    [("exact", 50, {}), ("rff", 100, {"exact_max_per_side": 0, "n_features": 128})],
)
def test_false_positive_rate_at_alpha_005(path: str, n: int, extra: dict[str, int]) -> None:
    # Same distribution on both sides: the permutation test is exact, so the rejection rate must
    # stay within alpha + 3 binomial sd (0.05 + 0.046 for 200 trials). The floor is switched off to
    # test the p-value itself.
    rng = np.random.default_rng(123)
    rejections = 0
    for trial in range(TRIALS):
        with threadpool_limits(1):  # tiny matrices: BLAS thread start-up costs more than the maths
            ref, cur = unit_gaussian(rng, n, dim=16), unit_gaussian(rng, n, dim=16)
            result = mmd_test(ref, cur, alpha=0.05, seed=trial, n_permutations=200, min_effect=0.0, **extra)
        assert result.details["path"] == path
        rejections += result.is_drift
    assert rejections / TRIALS <= fpr_bound(0.05, TRIALS)


@pytest.mark.parametrize("extra", [{}, {"exact_max_per_side": 0, "n_features": 256}])
def test_power_on_clear_shift(extra: dict[str, int]) -> None:
    rng = np.random.default_rng(7)
    trials = 50
    hits = sum(
        mmd_test(
            unit_gaussian(rng, 60, dim=16),
            unit_gaussian(rng, 60, dim=16, shift=1.5),
            alpha=0.05,
            seed=t,
            n_permutations=200,
            min_effect=0.0,
            **extra,
        ).is_drift
        for t in range(trials)
    )
    assert hits / trials >= 0.9


def test_exact_and_rff_agree() -> None:
    rng = np.random.default_rng(3)
    ref, cur = unit_gaussian(rng, 800, dim=32), unit_gaussian(rng, 800, dim=32, shift=0.6)
    exact = mmd_test(ref, cur, seed=0, n_permutations=100)
    rff = mmd_test(ref, cur, seed=0, n_permutations=100, exact_max_per_side=0, n_features=2048)
    assert exact.details["path"] == "exact" and rff.details["path"] == "rff"
    # The same pooled sample's median distance: read off the exact path's float32 Gram matrix, computed in float64
    # on the rff path, so equal to float32 rounding (another sample would differ by ~1%).
    assert exact.details["bandwidth"] == pytest.approx(rff.details["bandwidth"], rel=1e-5)
    assert rff.statistic == pytest.approx(exact.statistic, rel=0.15)
    assert rff.effect_size == pytest.approx(exact.effect_size, abs=0.01)


def test_effect_size_is_linear_in_mixed_share() -> None:
    # Replacing a share eps of the window with another population scales MMD by eps.
    rng = np.random.default_rng(5)
    base, other = unit_gaussian(rng, 6000, dim=16), unit_gaussian(rng, 6000, dim=16, shift=3.0)
    ref = base[:3000]

    def effect(share: float) -> float:
        k = int(share * 3000)
        cur = np.concatenate([base[3000 : 6000 - k], other[:k]])
        result = mmd_test(ref, cur, seed=1, n_permutations=50)
        assert result.effect_size is not None
        return result.effect_size

    e10, e20, e40 = effect(0.1), effect(0.2), effect(0.4)
    assert e20 / e10 == pytest.approx(2.0, rel=0.2)
    assert e40 / e20 == pytest.approx(2.0, rel=0.2)


def test_deterministic_for_a_seed() -> None:
    rng = np.random.default_rng(9)
    ref, cur = unit_gaussian(rng, 3000, dim=24), unit_gaussian(rng, 2500, dim=24, shift=0.2)
    first = mmd_test(ref, cur, seed=42, n_permutations=300)
    again = mmd_test(ref, cur, seed=42, n_permutations=300)
    assert first.details["path"] == "rff"
    assert first.to_dict() == again.to_dict()
    small = mmd_test(ref[:100], cur[:100], seed=42, n_permutations=300)
    assert small.to_dict() == mmd_test(ref[:100], cur[:100], seed=42, n_permutations=300).to_dict()


def test_p_value_has_plus_one_correction() -> None:
    assert permutation_p_value(1.0, np.zeros(999)) == pytest.approx(1 / 1000)
    assert permutation_p_value(0.0, np.zeros(999)) == 1.0  # ties count as "at least as extreme"
    assert permutation_p_value(0.5, np.array([0.1, 0.6, 0.7, 0.2])) == pytest.approx(3 / 5)


def test_peak_memory_is_linear_at_20k_per_side() -> None:
    # Derived bound: the feature matrix (N x n_features float32) plus the 64 MB working-set budget
    # used a few times over (permutation keys, their partition, the 0/1 block; one feature block
    # and its cast), plus the pooled bandwidth sample. A quadratic path would need N^2 * 4 bytes =
    # 6.4 GB here.
    n, dim, n_features = 20_000, 384, 1024
    rng = np.random.default_rng(0)
    ref = unit_gaussian(rng, n, dim).astype(np.float16)
    cur = unit_gaussian(rng, n, dim).astype(np.float16)
    bound = 2 * n * n_features * 4 + 4 * 64 * 1024 * 1024
    tracemalloc.start()
    try:
        result = mmd_test(ref, cur, seed=0, n_permutations=200, n_features=n_features)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.details["path"] == "rff"
    assert not result.is_drift
    assert peak < bound, f"peak {peak / 2**20:.0f} MiB >= bound {bound / 2**20:.0f} MiB"


def test_float16_input_matches_float32() -> None:
    rng = np.random.default_rng(11)
    ref, cur = unit_gaussian(rng, 3000, 64), unit_gaussian(rng, 3000, 64, shift=0.5)
    a = mmd_test(ref, cur, seed=3, n_permutations=100)
    b = mmd_test(ref.astype(np.float16), cur.astype(np.float16), seed=3, n_permutations=100)
    assert b.effect_size == pytest.approx(a.effect_size, rel=0.02)


def test_tiny_samples_raise_insufficient_data() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(InsufficientDataError, match="min_samples=20"):
        mmd_test(unit_gaussian(rng, 19, 8), unit_gaussian(rng, 100, 8))
    result = mmd_test(unit_gaussian(rng, 5, 8), unit_gaussian(rng, 5, 8), min_samples=5, n_permutations=50)
    assert result.n_reference == 5


def test_nan_and_bad_shapes_are_refused() -> None:
    rng = np.random.default_rng(0)
    ref, cur = unit_gaussian(rng, 50, 8), unit_gaussian(rng, 50, 8)
    cur[3, 2] = np.nan
    with pytest.raises(ValueError, match="current contains NaN"):
        mmd_test(ref, cur)
    with pytest.raises(ValueError, match="same dimension"):
        mmd_test(ref, unit_gaussian(rng, 50, 9))
    with pytest.raises(ValueError, match="2-D"):
        mmd_test(ref[:, 0], ref[:, 1])
    with pytest.raises(ValueError, match="alpha"):
        mmd_test(ref, ref, alpha=1.5)


def test_constant_arrays() -> None:
    same = np.ones((40, 8), dtype=np.float32)
    result = mmd_test(same, same.copy(), seed=0)
    assert not result.is_drift and result.p_value == 1.0 and result.details["path"] == "degenerate"
    moved = mmd_test(same, -same, seed=0, n_permutations=200)
    assert moved.is_drift
    assert moved.effect_size is not None and np.isfinite(moved.effect_size)
    assert moved.details["spread_source"] == "pooled"


def test_floor_blocks_a_significant_but_tiny_shift() -> None:
    # Large windows make a tiny shift significant; the effect floor keeps it from paging anyone.
    rng = np.random.default_rng(2)
    ref, cur = unit_gaussian(rng, 20_000, 32), unit_gaussian(rng, 20_000, 32, shift=0.12)
    result = mmd_test(ref, cur, seed=0, n_permutations=200)
    assert result.p_value is not None and result.p_value <= 0.01
    assert result.effect_size is not None and result.effect_size < result.details["min_effect"]
    assert not result.is_drift
