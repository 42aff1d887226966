"""Promotion gates as non-inferiority tests: known answers on constructed cases, false failures on
same-distribution models, and power against a real degradation."""

from __future__ import annotations

import numpy as np
import pytest

from retrain.evaluation.gate_stats import (
    disparity,
    non_inferiority,
    paired_rate_difference,
    rate_units_to_settle,
)
from retrain.evaluation.gates import GateConfig, ModelScores, bias_gate, evaluate_gates, toxicity_gate
from tests.support.retrain import scores


def _model(flags: np.ndarray, cells: np.ndarray | None = None) -> ModelScores:
    bias = None if cells is None else disparity(cells)
    return ModelScores(eval_nll=2.0, eval_tokens=100, toxicity_rate=float(np.mean(flags)), n_generated=len(flags),
                       bias_gap=None, bias_disparity=bias, similarity=None, n_similarity=0,
                       toxic_flags=tuple(int(f) for f in flags),
                       bias_cells=None if cells is None else {"gender": cells.tolist()})


def test_identical_challenger_passes_every_gate_it_can_measure() -> None:
    rng = np.random.default_rng(1)
    flags = rng.random(120) < 0.1
    cells = rng.normal(0.2, 0.3, size=(10, 3))
    champion = _model(flags, cells)
    report = evaluate_gates(champion, champion, GateConfig(min_loss_improvement=0.0))
    tox, bias = report.results[1], report.results[2]
    assert tox.status == "passed" and tox.estimate == 0.0 and tox.ci_high is not None and tox.ci_high < 0.05
    assert bias.status == "passed" and bias.ci_low == bias.ci_high == 0.0
    # Even with zero tolerance an identical challenger is never called worse.
    strict = GateConfig(max_toxicity_increase=0.0, max_bias_disparity_increase=0.0)
    assert bias_gate(champion, champion, strict).status == "passed"
    assert toxicity_gate(champion, champion, strict).status != "failed"


def test_known_cases_pass_fail_and_inconclusive() -> None:
    cfg = GateConfig()
    # 0 of 200 toxic for both: the one-sided upper bound (~0.013) is under 0.05.
    assert toxicity_gate(scores(2.0, 0.0), scores(2.0, 0.0), cfg).status == "passed"
    # 0 -> 50 of 200: even the lower bound (~0.19) is over 0.05.
    failed = toxicity_gate(scores(2.0, 0.0), scores(2.0, 0.25), cfg)
    assert failed.status == "failed" and failed.ci_low is not None and failed.ci_low > 0.05 and not failed.passed
    # 0 of 6 for both: nothing seen, but 6 answers cannot rule out a 5-point rise.
    small = toxicity_gate(scores(2.0, 0.0, n=6), scores(2.0, 0.0, n=6), cfg)
    assert small.status == "inconclusive" and not small.passed and small.needed is not None
    assert "would settle" in small.reason and small.ci_high is not None and small.ci_high > 0.05
    # ...and the number it names does settle it.
    assert small.needed is not None
    settled = toxicity_gate(scores(2.0, 0.0, n=small.needed), scores(2.0, 0.0, n=small.needed), cfg)
    assert settled.status == "passed"
    # Bias: a gap of 0.1 -> 0.3 on every template (disparity 0.01 -> 0.09) fails; one template is inconclusive.
    assert bias_gate(scores(2.0, bias=0.1), scores(2.0, bias=0.3), cfg).status == "failed"
    one = bias_gate(scores(2.0, bias=0.1, templates=1), scores(2.0, bias=0.9, templates=1), cfg)
    assert one.status == "inconclusive" and "template" in one.reason


def test_report_blocks_on_inconclusive_without_calling_it_a_failure() -> None:
    report = evaluate_gates(scores(2.5, n=6), scores(2.0, n=6), GateConfig())
    assert not report.passed
    assert [r.name for r in report.inconclusive] == ["toxicity_rate"]
    assert report.summary().startswith("toxicity_rate inconclusive (n=6, ~")


def test_rate_gate_false_failures_and_passes_on_same_distribution_models() -> None:
    """Two models with the same 5% toxicity rate on 300 prompts: never failed (<= 5%), passed >= 95%."""
    rng = np.random.default_rng(7)
    outcomes = []
    for _ in range(400):
        a, b = rng.random(300) < 0.05, rng.random(300) < 0.05
        outcomes.append(non_inferiority(paired_rate_difference(a, b, confidence=0.9), 0.08))
    assert outcomes.count("failed") / len(outcomes) <= 0.05
    assert outcomes.count("passed") / len(outcomes) >= 0.95


def test_rate_gate_interval_covers_the_true_difference() -> None:
    """One-sided 95% upper bound: the true difference is above it at most ~5% of the time."""
    rng = np.random.default_rng(3)
    misses = 0
    trials = 600
    for _ in range(trials):
        a = rng.random(80) < 0.1
        b = np.where(rng.random(80) < 0.5, a, rng.random(80) < 0.2)  # correlated with a; true rate 0.15
        misses += paired_rate_difference(a, b, confidence=0.9).high < 0.05
    assert misses / trials <= 0.07


def test_rate_gate_power_against_a_real_degradation() -> None:
    """5% -> 20% toxicity on 200 prompts, tolerance 0.05: failed in >= 90% of runs."""
    rng = np.random.default_rng(11)
    fails = sum(
        non_inferiority(paired_rate_difference(rng.random(200) < 0.05, rng.random(200) < 0.20, confidence=0.9),
                        0.05) == "failed"
        for _ in range(300))
    assert fails / 300 >= 0.9


def test_units_to_settle_and_bad_input() -> None:
    zeros = np.zeros(6, dtype=bool)
    n = rate_units_to_settle(zeros, zeros, 0.05)
    assert n is not None and 40 <= n <= 70  # one-sided 95% Wilson bound of 0/n under 0.05 needs n ~ 52
    with pytest.raises(ValueError, match="same items"):
        paired_rate_difference(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="confidence"):
        GateConfig(confidence=0.3)
