"""A long reference sampled in runs of consecutive events (monitor/pipeline/sampling.run_sample) lets the
calibration see the variation a window carries; a uniform sample of the same reference averages it away.

Synthetic traffic with fast variation: 8 topics (Gaussian clusters), whose mix is redrawn every "hour" of 500
events (log-normal weights). A window is 250 events of one fresh hour; the reference is 48 hours, sampled to
4,000 rows. In a uniform sample, 250 consecutive sample rows span 3 hours, so the calibration's time blocks mix
3 hours and measure a fraction of the window-to-window variation; in 16 runs of 250 consecutive events each
block is one hour, like a window."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from monitor.drift import get_detector
from monitor.drift.thresholds import apply_calibration, calibrate_methods
from monitor.pipeline.sampling import run_sample, sample_ids
from tests.support.stats import fpr_bound

HOUR, HOURS, LIMIT, WINDOW, RUNS = 500, 48, 4000, 250, 16


def _hours(rng: np.random.Generator, centres: np.ndarray, n_hours: int) -> np.ndarray:
    """n_hours x HOUR events, each hour with its own topic mix."""
    out = []
    for _ in range(n_hours):
        w = np.exp(0.6 * rng.standard_normal(centres.shape[0]))
        topics = rng.choice(centres.shape[0], HOUR, p=w / w.sum())
        out.append(centres[topics] + 0.5 * rng.standard_normal((HOUR, centres.shape[1])))
    return np.concatenate(out).astype(np.float32)


def test_run_sample_keeps_evenly_spaced_runs_of_consecutive_events() -> None:
    ids = np.arange(1000, 101_000)
    picked = run_sample(ids, 4000, 16)
    assert picked.size == 4000 and np.all(np.diff(picked) > 0)
    breaks = np.flatnonzero(np.diff(picked) > 1)
    assert breaks.size == 15  # 16 runs: consecutive inside, a jump between
    starts = picked[np.concatenate([[0], breaks + 1])]
    assert starts[0] == ids[0] and picked[-1] == ids[-1]  # the whole reference is spanned
    assert np.ptp(np.diff(starts)) <= 1  # evenly spaced
    assert np.array_equal(run_sample(ids, 4000, 16), picked)  # no randomness
    assert np.array_equal(run_sample(ids[:3000], 4000, 16), ids[:3000])  # a reference that fits is kept whole
    uneven = run_sample(ids, 4003, 16)
    assert uneven.size == 4003 and np.flatnonzero(np.diff(uneven) > 1).size == 15
    with pytest.raises(ValueError):
        run_sample(ids, 0, 16)


@pytest.mark.slow
def test_runs_measure_the_window_scale_variation_a_uniform_sample_misses() -> None:
    rng = np.random.default_rng(7)
    centres = 2.0 * rng.standard_normal((8, 8))
    day = _hours(rng, centres, HOURS)
    ids = np.arange(day.shape[0])
    trials, alpha = 30, 0.05
    fired = {"runs": 0, "uniform": 0}
    lam = {}
    with threadpool_limits(1):
        cals = {"runs": calibrate_methods(day[run_sample(ids, LIMIT, RUNS)], ("knn",), seed=1, window_size=WINDOW,
                                          alpha=alpha, runs=RUNS)["knn"],
                "uniform": calibrate_methods(day[sample_ids(ids, LIMIT, salt=3)], ("knn",), seed=1,
                                             window_size=WINDOW, alpha=alpha)["knn"]}
        refs = {"runs": day[run_sample(ids, LIMIT, RUNS)], "uniform": day[sample_ids(ids, LIMIT, salt=3)]}
        for t in range(trials):
            window = _hours(rng, centres, 1)[rng.choice(HOUR, WINDOW, replace=False)]  # a fresh, quiet hour
            for kind, cal in cals.items():
                raw = get_detector("knn")(refs[kind], window, seed=t, alpha=alpha, n_permutations=300)
                fired[kind] += apply_calibration(raw, cal, alpha).is_drift
        lam = {k: c.lam for k, c in cals.items()}
    assert cals["runs"].block_size == WINDOW
    # The runs' blocks are single hours: they see (most of) the variation; the uniform sample's see a third.
    assert lam["runs"] > 1.5 * lam["uniform"], lam
    assert fired["runs"] / trials <= fpr_bound(alpha, trials), (fired, lam)
    assert fired["uniform"] > fired["runs"], (fired, lam)
