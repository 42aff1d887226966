"""Per-reference calibration (monitor/drift/thresholds.py): statistical checks on real public queries
(CLINC150 extract, MiniLM) and the rule's bookkeeping. The real-data tests embed the extract once per
machine (cached under bench/results/)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from monitor.drift import get_detector
from monitor.drift.calibration import IntentPool, cyclic_sample, load_intent_pool, new_intent_windows
from monitor.drift.thresholds import (
    FALLBACK_FLOORS,
    Calibration,
    apply_calibration,
    calibrate,
    calibrate_methods,
    carried_lambda,
    effective_size,
    with_segment_lambda,
)
from tests.drift.conftest import unit_gaussian
from tests.support.stats import fpr_bound


@pytest.fixture(scope="module")
def clinc() -> IntentPool:
    return load_intent_pool("clinc150")


def _judged(method: str, ref: np.ndarray, cur: np.ndarray, cal: Calibration, alpha: float,
            seed: int) -> tuple[bool, bool]:
    """(plain permutation p <= alpha, calibrated verdict) for one window."""
    raw = get_detector(method)(ref, cur, alpha=alpha, seed=seed, n_permutations=300, min_effect=0.0)
    return bool(raw.p_value is not None and raw.p_value <= alpha), apply_calibration(raw, cal, alpha).is_drift


@pytest.mark.slow
def test_calibrated_fpr_on_iid_quiet_windows(clinc: IntentPool) -> None:
    # 60 same-distribution windows (100 events against a 400-event reference, no shared rows), alpha 0.05:
    # the calibrated verdict (z against the permutation null, Pearson III tail, deflated by λ) fires at most
    # 0.05 + 3 binomial sd (0.134) of the time, for both methods.
    rng = np.random.default_rng(21)
    trials = 60
    fired = {"mmd": 0, "knn": 0}
    with threadpool_limits(1):
        for t in range(trials):
            rows = rng.permutation(clinc.vectors.shape[0])
            ref, cur = clinc.vectors[rows[:400]], clinc.vectors[rows[400:500]]
            cals = calibrate_methods(ref, ("mmd", "knn"), seed=t, window_size=100, alpha=0.05)
            for method in fired:
                fired[method] += _judged(method, ref, cur, cals[method], 0.05, t)[1]
    for method, count in fired.items():
        assert count / trials <= fpr_bound(0.05, trials), (method, count)


@pytest.mark.slow
def test_calibrated_fpr_on_a_daily_cycle(clinc: IntentPool) -> None:
    # Quiet but non-stationary: 20 intents whose shares swing 0x-2x over the day, each with its own phase.
    # The reference spans the day (1,200 events in arrival order); the window is 150 events of one 5-minute
    # slot. The plain permutation test calls many of these windows drift (the mix really differs from the
    # day's average); the λ-deflated verdict stays within the binomial bound at alpha 0.05.
    rng = np.random.default_rng(22)
    keep = sorted(set(clinc.intents.tolist()))[:20]
    trials = 20
    plain = calibrated = 0
    with threadpool_limits(1):
        for t in range(trials):
            ref_rows = cyclic_sample(clinc, np.sort(rng.random(1200)), amplitude=1.0, rng=rng, seed=t, intents=keep)
            slot = (rng.random() + rng.random(150) / 288.0) % 1.0
            cur_rows = cyclic_sample(clinc, slot, amplitude=1.0, rng=rng, seed=t, intents=keep)
            cal = calibrate(clinc.vectors[ref_rows], method="mmd", seed=t, window_size=150, alpha=0.05)
            p, c = _judged("mmd", clinc.vectors[ref_rows], clinc.vectors[cur_rows], cal, 0.05, t)
            plain += p
            calibrated += c
    assert plain >= trials // 2, plain  # the simulator is non-stationary enough to matter
    assert calibrated / trials <= fpr_bound(0.05, trials), calibrated


@pytest.mark.slow
def test_power_on_new_neighbouring_intents(clinc: IntentPool) -> None:
    # 30% of a 200-event window from 10 intents the reference never saw, each from a domain the reference
    # knows (neighbours, not a new topic): the calibrated kNN rule finds it in >= 80% of 20 trials at alpha 0.01.
    rng = np.random.default_rng(23)
    with threadpool_limits(1):
        hits = 0
        for t in range(20):
            ref, cur = new_intent_windows(clinc, n_reference=400, n_current=200, share=0.3, rng=rng)
            cal = calibrate(ref, method="knn", seed=t, window_size=200)
            hits += _judged("knn", ref, cur, cal, 0.01, t)[1]
        assert hits >= 16, hits


def test_small_reference_falls_back_to_the_conservative_rule() -> None:
    rng = np.random.default_rng(1)
    cals = calibrate_methods(unit_gaussian(rng, 239, 8), ("mmd", "knn", "classifier"), seed=0)
    for method, cal in cals.items():
        assert cal.source == "fallback" and cal.floor == FALLBACK_FLOORS[method] and cal.lam == 1.0
        assert "at least 240" in cal.reason
    ref, cur = unit_gaussian(rng, 239, 8), unit_gaussian(rng, 239, 8, shift=0.15)
    judged = apply_calibration(get_detector("mmd")(ref, cur, seed=0, min_effect=0.0), cals["mmd"])
    assert judged.details["min_effect"] == FALLBACK_FLOORS["mmd"]
    assert judged.p_value is not None and judged.effect_size is not None
    assert judged.details["p_calibrated"] == judged.p_value  # the exact permutation p-value decides
    assert judged.is_drift == (judged.p_value <= 0.01 and judged.effect_size >= FALLBACK_FLOORS["mmd"])
    assert calibrate(unit_gaussian(rng, 240, 8), method="knn").source == "reference_blocks"


def test_stationary_reference_keeps_lambda_one() -> None:
    rng = np.random.default_rng(2)
    ref = unit_gaussian(rng, 800, 16)
    cal = calibrate(ref, method="knn", seed=0, window_size=100)
    assert cal.source == "reference_blocks" and cal.n_blocks == 16 and cal.block_size == 100
    assert cal.nonstationarity_p is not None and cal.nonstationarity_p > 0.05
    assert cal.lam == 1.0 and cal.floor == 0.0 and cal.score_threshold == pytest.approx(2.3263, abs=1e-3)
    cur = unit_gaussian(rng, 100, 16, shift=4.0)
    judged = apply_calibration(get_detector("knn")(ref, cur, seed=0, min_effect=0.0), cal)
    assert judged.is_drift and judged.details["lambda"] == 1.0 and judged.details["p_calibrated"] < 1e-6


def test_drifting_reference_gets_lambda_above_one_and_quiets_its_own_variation() -> None:
    # A reference whose mean walks over time: its blocks differ from the rest beyond sampling noise, so λ > 1;
    # a window from late in the walk is "significant" to the plain test but not after deflation by λ.
    rng = np.random.default_rng(3)
    n, dim = 1600, 16
    ref = rng.standard_normal((n, dim)).astype(np.float32)
    ref[:, 0] += np.linspace(-1.0, 1.0, n)
    cals = calibrate_methods(ref, ("mmd", "knn"), seed=0, window_size=100)
    # kNN in 16 dimensions sees a walk on one coordinate only weakly (gate p 0.034 here, above 0.01).
    assert cals["knn"].nonstationarity_p is not None and cals["knn"].nonstationarity_p <= 0.05
    cal = cals["mmd"]
    assert cal.nonstationarity_p is not None and cal.nonstationarity_p <= 0.01
    assert cal.lam > 1.5 and cal.lam_blocks is not None and cal.interval[0] <= cal.interval[1]
    assert cal.score_threshold > 2.33
    for seed in range(3):
        window = rng.standard_normal((100, dim)).astype(np.float32)
        window[:, 0] += 0.8  # where the walk is at 90% of the reference's time
        raw = get_detector("mmd")(ref, window, seed=seed, min_effect=0.0)
        judged = apply_calibration(raw, cals["mmd"])
        assert raw.p_value is not None and raw.p_value <= 0.01 and not judged.is_drift
    # λ carries linearly with the effective sample size of the comparison.
    assert carried_lambda(3.0, 50.0, 100.0) == pytest.approx(5.0)
    assert carried_lambda(0.8, 50.0, 100.0) == 1.0


def test_same_seed_same_calibration_round_trip_and_bad_input_refused() -> None:
    rng = np.random.default_rng(4)
    ref = unit_gaussian(rng, 600, 8)
    cal = calibrate(ref, method="mmd", seed=5)
    assert cal == calibrate(ref, method="mmd", seed=5)
    assert Calibration.from_dict(cal.to_dict()) == cal
    with pytest.raises(ValueError, match="no calibration"):
        calibrate(ref, method="psi")
    with pytest.raises(ValueError, match="finite 2-D"):
        calibrate(np.full((600, 4), np.nan), method="knn")
    with pytest.raises(ValueError, match="n_blocks"):
        calibrate(ref, method="knn", n_blocks=2)
    with pytest.raises(ValueError, match="window_size"):
        calibrate(ref, method="knn", window_size=0)
    knn_cal = calibrate(ref, method="knn")
    with pytest.raises(ValueError, match="applied to a 'mmd' result"):
        apply_calibration(get_detector("mmd")(ref, ref, seed=0), knn_cal)


def test_segment_lambda_is_the_larger_of_its_own_and_the_carried_whole() -> None:
    whole = Calibration("mmd", 9.0, 20.0, (5.0, 13.0), "reference_blocks", 0.0, 0.01, 6.98, 4000, 16, 500, 1024,
                        0.001, "moves")
    own = Calibration("mmd", 1.0, None, (1.0, 1.0), "reference_blocks", 0.0, 0.01, 2.33, 2000, 16, 125, 128, 0.4,
                      "steady")
    ratio = effective_size(128, 2000) / effective_size(1024, 4000)
    seg = with_segment_lambda(own, whole)
    assert seg.lam == pytest.approx(1 + 8.0 * ratio) and seg.lam_from == "all" and seg.lam_segment == 1.0
    assert seg.lam_all == 9.0 and seg.lam_all_carried == seg.lam
    assert seg.interval == pytest.approx((1 + 4.0 * ratio, 1 + 12.0 * ratio))
    assert seg.score_threshold == pytest.approx(2.3263 * seg.lam**0.5, rel=1e-4)
    assert Calibration.from_dict(seg.to_dict()) == seg
    from monitor.pipeline.cli import _floor_text  # `driftloop drift` says where a segment row's λ came from

    assert f"from all: own 1, all 9 carried {seg.lam:.4g}" in _floor_text({"details": {"calibration": seg.to_dict()}})
    # A segment that moves more than the carried whole keeps its own λ (and says so).
    moving = replace(own, lam=5.0, interval=(3.0, 7.0))
    kept = with_segment_lambda(moving, whole)
    assert kept.lam == 5.0 and kept.lam_from == "segment" and kept.interval == (3.0, 7.0)
    assert kept.lam_all_carried == pytest.approx(seg.lam)
    # A fallback on either side is left alone: no λ to carry, or a segment judged by the fixed floor.
    fallback = replace(own, source="fallback", floor=0.05)
    assert with_segment_lambda(fallback, whole) == fallback
    assert with_segment_lambda(own, replace(whole, source="fallback")) == own
    with pytest.raises(ValueError, match="combined"):
        with_segment_lambda(own, replace(whole, method="knn"))
    # Stored calibrations written before the segment fields existed still load.
    old = {k: v for k, v in own.to_dict().items() if not k.startswith("lam_") or k == "lam_blocks"}
    assert Calibration.from_dict(old) == own


def test_cli_shows_the_calibration() -> None:
    from monitor.pipeline.cli import _floor_text

    rng = np.random.default_rng(9)
    ref = unit_gaussian(rng, 800, 8)
    judged = apply_calibration(get_detector("knn")(ref, ref[:100], seed=0, min_effect=0.0),
                               calibrate(ref, method="knn", window_size=100))
    text = _floor_text(judged.to_dict())
    assert text.startswith("λ 1") and "reference_blocks" in text
    assert _floor_text({"details": {}}) == ""


def test_reference_smaller_than_the_window_shares_the_gate_and_stays_quiet() -> None:
    # Issue #16, small references: 480 reference rows whose mean walks over time, windows of 400 rows, so the
    # calibration blocks (60 rows) are far smaller than the window. kNN alone sees the walk weakly in blocks
    # that small (its gate missed it before); whether the traffic moves is one question, answered for every
    # method by the signed block scores of both (Bonferroni), and the same rows shuffled keep λ = 1.
    rng = np.random.default_rng(5)
    n, dim, window = 480, 16, 400
    ref = rng.standard_normal((n, dim)).astype(np.float32)
    ref[:, 0] += np.linspace(-1.0, 1.0, n)
    cals = calibrate_methods(ref, ("mmd", "knn"), seed=0, window_size=window)
    for cal in cals.values():
        assert cal.block_size == 60 and cal.nonstationarity_p is not None and cal.nonstationarity_p <= 0.01
        assert cal.lam > 2.0
    assert cals["mmd"].nonstationarity_p == cals["knn"].nonstationarity_p
    shuffled = calibrate_methods(ref[rng.permutation(n)], ("mmd", "knn"), seed=0, window_size=window)
    for cal in shuffled.values():
        assert cal.lam == 1.0 and cal.nonstationarity_p is not None and cal.nonstationarity_p > 0.05
