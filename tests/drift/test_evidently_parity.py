"""Evidently's methods through our wrapper (slow: importing Evidently takes seconds)."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.drift import get_detector
from tests.drift.conftest import unit_gaussian

pytestmark = pytest.mark.slow

NAMES = ["evidently_model", "evidently_ratio", "evidently_distance", "evidently_mmd"]


@pytest.mark.parametrize("name", NAMES)
def test_wrapper_returns_drift_result_and_detects_a_strong_shift(name: str) -> None:
    # Unit-norm rows like embeddings, and 1000 per side: Evidently's thresholds are fixed numbers
    # that are not calibrated for sample size (its ratio method fires on same-distribution 16-d
    # Gaussians at 300 per side), which is one reason they are not our defaults.
    rng = np.random.default_rng(0)
    ref, same, moved = (
        unit_gaussian(rng, 1000, 16),
        unit_gaussian(rng, 1000, 16),
        unit_gaussian(rng, 1000, 16, 2.0),
    )
    detector = get_detector(name)
    quiet = detector(ref, same, seed=0)
    shifted = detector(ref, moved, seed=0)
    assert quiet.method == shifted.method == name
    assert quiet.p_value is None and quiet.effect_size is None
    assert not quiet.is_drift
    assert shifted.is_drift and shifted.statistic > quiet.statistic
    assert shifted.details["evidently_method"] == name.removeprefix("evidently_")


def test_params_pass_through_and_inputs_are_untouched() -> None:
    rng = np.random.default_rng(1)
    ref, cur = unit_gaussian(rng, 200, 16), unit_gaussian(rng, 200, 16, shift=0.3)
    ref_copy, cur_copy = ref.copy(), cur.copy()
    strict = get_detector("evidently_distance")(ref, cur, threshold=10.0)
    assert strict.threshold == 10.0 and not strict.is_drift
    loose = get_detector("evidently_distance")(ref, cur, threshold=0.0)
    assert loose.is_drift and loose.statistic == strict.statistic
    get_detector("evidently_model")(ref, cur)
    np.testing.assert_array_equal(ref, ref_copy)
    np.testing.assert_array_equal(cur, cur_copy)


def test_bootstrap_does_not_reset_the_global_numpy_rng() -> None:
    rng = np.random.default_rng(2)
    ref, cur = unit_gaussian(rng, 100, 8), unit_gaussian(rng, 100, 8)
    np.random.seed(1234)
    expected_next = np.random.RandomState(1234).rand()
    result = get_detector("evidently_distance")(ref, cur, bootstrap=True)
    assert "threshold_source" in result.details
    assert np.random.rand() == expected_next


def test_subsampling_bounds_the_quadratic_mmd() -> None:
    rng = np.random.default_rng(3)
    result = get_detector("evidently_mmd")(
        unit_gaussian(rng, 900, 8), unit_gaussian(rng, 700, 8), max_per_side=250
    )
    assert result.details["n_used_reference"] == 250 and result.details["n_used_current"] == 250
    assert (result.n_reference, result.n_current) == (900, 700)
