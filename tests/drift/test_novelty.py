"""The `novelty` detector (issue #16): current items outside the reference's support, exact conformal null.

Synthetic "intents" (clusters on the 32-d sphere, of unequal spread) keep the level checks fast; the power check
uses real CLINC150 queries (new intents of known domains, slow). Checked: the count's level on i.i.d. quiet
windows and on *reweighted* quiet windows (same support, every intent's share moved by up to ±50%), where MMD
and the kNN test fire; power on a near-domain shift; determinism across BLAS thread counts; bad input refused;
through the pipeline (Postgres and SQLite): calibrated, stored, budgeted with the window's rows, recomputed
identically.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from threadpoolctl import threadpool_limits

from monitor.drift import get_detector
from monitor.drift.calibration import IntentPool, load_intent_pool, new_intent_windows
from monitor.drift.novelty import novelty_null, novelty_test, sum_of_betabinomials
from monitor.drift.null import deflated_p
from monitor.drift.result import InsufficientDataError
from monitor.drift.thresholds import calibrate, result_score
from monitor.ingest.service import ingest_events
from monitor.pipeline.models import DriftCalibration
from monitor.projects.service import get_or_create_project
from monitor.runner import process_window, run_pending
from tests.support.factories import unique_slug
from tests.support.stats import fpr_bound

DIM = 32
N_INTENTS = 20


def _intents(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Cluster centres on the sphere and unequal spreads (0.4-0.8): sparse intents have more far-out items, so a
    reweighting towards them is exactly what a support test must not mistake for novelty."""
    c = rng.standard_normal((N_INTENTS, DIM))
    return c / np.linalg.norm(c, axis=1, keepdims=True), rng.uniform(0.4, 0.8, N_INTENTS)


def _draw(rng: np.random.Generator, intents: tuple[np.ndarray, np.ndarray], n: int,
          weights: np.ndarray | None = None) -> np.ndarray:
    centres, spread = intents
    picks = rng.choice(len(centres), n, p=weights)
    x = centres[picks] + spread[picks, None] * rng.standard_normal((n, DIM)) / np.sqrt(DIM)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_null_is_the_conformal_beta_binomial() -> None:
    rank, null = novelty_null(1000, 500, 0.05)
    assert rank == 951  # ceil(0.95 * 1001)
    assert null.mean() == pytest.approx(500 * 50 / 1001)
    # The shared threshold widens the plain binomial: variance ~ n q (1 - q)(1 + n / m).
    assert null.var() == pytest.approx(500 * 0.05 * 0.95 * 1.5, rel=0.05)
    # Too few reference rows for the level: the rank is clamped and the null is still the exact one for it.
    rank, null = novelty_null(10, 50, 0.05)
    assert rank == 10 and null.mean() == pytest.approx(50 / 11)
    # Cells: the sum of independent per-cell counts, by convolution.
    parts = [(30, 2, 24), (5, 1, 25), (80, 3, 50)]
    pmf = sum_of_betabinomials(parts)
    assert pmf.size == 116 and pmf.sum() == pytest.approx(1.0)
    assert np.dot(np.arange(pmf.size), pmf) == pytest.approx(sum(n * a / (a + b) for n, a, b in parts))


def test_level_on_iid_quiet_windows() -> None:
    # 300 same-distribution windows (400 reference vs 200 current items): the exact p-value and the score the
    # calibration reads (λ = 1) fire at most 0.05 + 3 binomial sd (0.088) at alpha 0.05.
    rng = np.random.default_rng(1601)
    intents = _intents(rng)
    trials = 300
    exact = tail = 0
    with threadpool_limits(1):
        for t in range(trials):
            res = novelty_test(_draw(rng, intents, 400), _draw(rng, intents, 200), alpha=0.05, seed=t)
            exact += res.is_drift
            tail += deflated_p(result_score(res), 1.0) <= 0.05
    assert exact / trials <= fpr_bound(0.05, trials), exact
    assert tail / trials <= fpr_bound(0.05, trials), tail


def test_level_on_reweighted_quiet_windows_where_mmd_and_knn_fire() -> None:
    # Same support, new mix: every intent's share in the window is multiplied by 1 ± 0.5 (random signs), 1,000
    # reference vs 1,000 current items. The reweighting is real drift of the mixture (plain MMD and kNN at 0.05
    # fire on most windows), but nothing is new, and the novelty count holds its level (0.05 + 3 sd).
    rng = np.random.default_rng(1602)
    intents = _intents(rng)
    trials = 150
    novel = mixture = 0
    with threadpool_limits(1):
        for t in range(trials):
            w = 1.0 + 0.5 * rng.choice([-1.0, 1.0], N_INTENTS)
            ref, cur = _draw(rng, intents, 1000), _draw(rng, intents, 1000, w / w.sum())
            novel += novelty_test(ref, cur, alpha=0.05, seed=t).is_drift
            if t < 20:
                mixture += get_detector("mmd")(ref, cur, alpha=0.05, seed=t, min_effect=0.0,
                                               n_permutations=200).is_drift
    assert novel / trials <= fpr_bound(0.05, trials), novel
    assert mixture >= 15, mixture  # the windows do differ: the test above is not vacuous


def test_calibrated_novelty_on_a_stationary_reference_keeps_lambda_one() -> None:
    rng = np.random.default_rng(1603)
    ref = _draw(rng, _intents(rng), 1600)
    cal = calibrate(ref, method="novelty", seed=3, window_size=200, alpha=0.01)
    assert cal.method == "novelty" and cal.source == "reference_blocks"
    assert cal.lam == 1.0, cal.reason


@pytest.fixture(scope="module")
def clinc() -> IntentPool:
    return load_intent_pool("clinc150")


@pytest.mark.slow
def test_power_on_new_neighbouring_intents(clinc: IntentPool) -> None:
    # CLINC150 (the constants' own data set): 10% of a 1,000-event window from 10 held-back intents whose
    # domains keep other intents in the reference. Found at alpha 0.01 in >= 16 of 20 trials.
    rng = np.random.default_rng(1604)
    found = 0
    with threadpool_limits(1):
        for t in range(20):
            ref, cur = new_intent_windows(clinc, n_reference=1000, n_current=1000, share=0.1, rng=rng)
            found += novelty_test(ref, cur, alpha=0.01, seed=t).is_drift
    assert found >= 16, found


def test_same_result_with_one_and_two_blas_threads_and_from_the_cache() -> None:
    rng = np.random.default_rng(1605)
    intents = _intents(rng)
    ref, cur = _draw(rng, intents, 3000), _draw(rng, intents, 700)
    detector = get_detector("novelty")  # registered: runs with one BLAS thread whatever the caller's setting
    with threadpool_limits(1):
        one = detector(ref, cur, seed=5).to_dict()
    with threadpool_limits(2):
        two = detector(ref, cur, seed=5).to_dict()
        again = detector(ref.copy(), cur, seed=5).to_dict()  # reference part from the cache
    assert one == two == again
    assert get_detector("novelty")(ref, cur, seed=5, k=3).to_dict() != one


def test_result_fields_and_effect_on_a_separate_cluster() -> None:
    rng = np.random.default_rng(1606)
    intents = _intents(rng)
    far = _draw(rng, (np.eye(DIM)[:1] * -1.0, np.array([0.3])), 150)
    # seed fixes the cells' anchors (seed=None draws them afresh, so the score varies from call to call).
    res = novelty_test(_draw(rng, intents, 1000), np.concatenate([_draw(rng, intents, 850), far]), alpha=0.01,
                       seed=0)
    assert res.method == "novelty" and res.is_drift and res.p_value is not None and res.p_value < 1e-10
    # A cluster no reference item is near: all of its 15% are novel, so the excess share is close to 0.15.
    assert res.effect_size == pytest.approx(0.15, abs=0.03)
    assert res.details["novel"] == res.statistic
    assert res.to_dict()["details"]["z"] > 6


def test_bad_input_is_refused() -> None:
    rng = np.random.default_rng(1607)
    ref, cur = rng.standard_normal((50, 8)), rng.standard_normal((40, 8))
    bad = cur.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="current contains NaN"):
        novelty_test(ref, bad)
    with pytest.raises(ValueError, match="same dimension"):
        novelty_test(ref, cur[:, :4])
    with pytest.raises(InsufficientDataError):
        novelty_test(ref, cur[:10])
    with pytest.raises(ValueError, match="alpha"):
        novelty_test(ref, cur, alpha=1.5)
    with pytest.raises(ValueError, match="level"):
        novelty_test(ref, cur, level=0.0)
    with pytest.raises(ValueError, match="k must be positive"):
        novelty_test(ref, cur, k=0)
    with pytest.raises(ValueError, match="2-D"):
        novelty_test(ref[:, 0], cur)


@pytest.mark.slow
def test_novelty_through_the_pipeline_is_calibrated_budgeted_and_recomputed_identically(
    session_maker: sessionmaker[Session],
) -> None:
    # A project that adds `novelty` to its drift methods (Postgres and SQLite via the fixture): the row is
    # calibrated on the reference and stored with it, shares the window's Benjamini-Hochberg family with mmd,
    # and a recompute writes the same row.
    from tests.drift.test_calibration_pipeline import T0, _drift_rows, _events

    with session_maker() as s:
        project = get_or_create_project(s, unique_slug())
        project.config = {"reference": {"kind": "first_n", "n": 400}, "drift_min_samples": 60,
                          "drift_fields": ["prompt"], "drift_methods": ["mmd", "novelty"]}
        ingest_events(s, project.id, _events(0, 400) + _events(1, 100))
        s.commit()
        pid = project.id
    assert run_pending(factory=session_maker, project_ids=[pid]).failures == []
    hour1 = T0 + timedelta(hours=1)
    with session_maker() as s:
        rows = _drift_rows(s, pid)
        row = rows[("drift.prompt.novelty", hour1)]
        cal = row.details["details"]["calibration"]
        assert cal["method"] == "novelty" and cal["source"] == "reference_blocks" and cal["n_reference"] == 400
        # mmd, novelty and the onset row (against hour 0; it borrows mmd's λ, the largest, with no knn to borrow)
        assert row.details["budget"]["family_size"] == 3 and row.p_value is not None
        onset = rows[("drift.embeddings.onset", hour1)].details["details"]["calibration"]
        assert onset["source"] == "reference_lambda" and onset["lam"] == max(
            c.lam for c in s.scalars(select(DriftCalibration).where(DriftCalibration.project_id == pid)))
        assert {c.method for c in s.scalars(select(DriftCalibration).where(DriftCalibration.project_id == pid))} == {
            "mmd", "novelty"}
        before = (row.value, row.p_value, row.flagged, row.details)
    process_window(pid, hour1, factory=session_maker, only=["drift"])
    with session_maker() as s:
        again = _drift_rows(s, pid)[("drift.prompt.novelty", hour1)]
        assert (again.value, again.p_value, again.flagged, again.details) == before
