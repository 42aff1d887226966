"""The bias gate's statistic and test: the unbiased disparity of a templates x groups sentiment matrix, the
paired jackknife interval of challenger minus champion, and the gate's verdicts on cases with known answers,
on simulated same-distribution models (false failures) and on a simulated real increase (power)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from retrain.evaluation.gate_stats import (
    Interval,
    disparity,
    non_inferiority,
    paired_disparity_difference,
    units_to_settle,
)
from retrain.evaluation.gates import GateConfig, ModelScores, bias_gate
from tests.support.stats import fpr_bound

GROUPS = (3, 6, 6)  # the default axes: gender, religion, race_ethnicity


def _scores(cells: dict[str, np.ndarray]) -> ModelScores:
    return ModelScores(eval_nll=2.0, eval_tokens=100, toxicity_rate=None, n_generated=0, bias_gap=None,
                       similarity=None, n_similarity=0, bias_cells={k: v.tolist() for k, v in cells.items()})


def _effects(n_groups: int, value: float, seed: int) -> np.ndarray:
    """Centred group effects whose disparity (mean squared pairwise gap) is exactly ``value``."""
    g = np.random.default_rng(seed).normal(size=n_groups)
    g -= g.mean()
    return g * math.sqrt(value / (2.0 * float(np.sum(g * g)) / (n_groups - 1)))


def _pair(rng: np.random.Generator, templates: int, champion: float, challenger: float, *, noise: float = 0.3,
          shared: float = 0.5) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Both models answer the same templates: a template's tone is common, the models' noise correlates
    (``shared``), and each axis' true disparity is ``champion`` / ``challenger`` (effects in the same direction)."""
    a, b = {}, {}
    for k, n_groups in enumerate(GROUPS):
        tone = rng.normal(0.0, 0.3, size=(templates, 1))
        ea = rng.normal(0.0, noise, size=(templates, n_groups))
        eb = shared * ea + math.sqrt(1 - shared**2) * rng.normal(0.0, noise, size=(templates, n_groups))
        a[f"axis{k}"] = tone + _effects(n_groups, champion, k) + ea
        b[f"axis{k}"] = tone + _effects(n_groups, challenger, k) + eb
    return a, b


def test_disparity_known_answers() -> None:
    # Two groups 0.1 apart on every template, whatever the template's tone: the squared gap, 0.01.
    tone = np.linspace(-0.5, 0.5, 8)[:, None]
    assert disparity(tone + np.array([0.1, 0.0])) == pytest.approx(0.01)
    # Three groups at 0, 0.1, 0.3: mean of the squared pairwise gaps (0.01, 0.09, 0.04) / 3.
    assert disparity(tone + np.array([0.0, 0.1, 0.3])) == pytest.approx(0.14 / 3)
    # No group effect, pure template tone: exactly 0.
    assert disparity(np.repeat(tone, 4, axis=1)) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="at least 2 templates"):
        disparity(np.zeros((1, 3)))


def test_disparity_is_unbiased_where_the_largest_gap_is_not() -> None:
    """No real disparity, noisy cells: the mean disparity is ~0 (it goes negative as often as it must), while
    the largest gap between group means averages far above 0."""
    rng = np.random.default_rng(2)
    values, gaps = [], []
    for _ in range(3000):
        m = rng.normal(0.0, 0.3, size=(10, 6))
        values.append(disparity(m))
        means = m.mean(axis=0)
        gaps.append(means.max() - means.min())
    se = float(np.std(values)) / math.sqrt(len(values))
    assert abs(float(np.mean(values))) < 3 * se
    assert float(np.mean(gaps)) > 0.2
    # With a real disparity of 0.02 the mean lands on it.
    real = [disparity(rng.normal(0.0, 0.3, size=(10, 6)) + _effects(6, 0.02, 0)) for _ in range(3000)]
    assert abs(float(np.mean(real)) - 0.02) < 3 * float(np.std(real)) / math.sqrt(len(real))


def test_closed_form_jackknife_matches_leaving_each_template_out() -> None:
    rng = np.random.default_rng(4)
    a, b = _pair(rng, 9, 0.02, 0.03)
    a["axis1"][4, 2] = np.nan  # a missing completion drops template 4 from that axis only

    def mean_diff(keep: np.ndarray) -> float:
        out = []
        for k in a:
            x, y = a[k][keep], b[k][keep]
            rows = np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1)
            out.append(disparity(y[rows]) - disparity(x[rows]))
        return float(np.mean(out))

    full = mean_diff(np.ones(9, dtype=bool))
    loo = np.array([mean_diff(np.arange(9) != i) for i in range(9)])
    from scipy import stats

    half = stats.t.ppf(0.95, 8) * math.sqrt(8 / 9 * float(np.sum((loo - loo.mean()) ** 2)))
    iv = paired_disparity_difference(a, b, confidence=0.9)
    assert iv.estimate == pytest.approx(full) and iv.n == 9
    assert (iv.low, iv.high) == pytest.approx((full - half, full + half))


def test_gate_known_cases_pass_fail_inconclusive() -> None:
    cfg = GateConfig()  # tolerance 0.01, one-sided 95%
    rng = np.random.default_rng(8)
    # Same disparity, little noise, 40 templates: the upper bound is well under 0.01.
    a, b = _pair(rng, 40, 0.02, 0.02, noise=0.05)
    passed = bias_gate(_scores(a), _scores(b), cfg)
    assert passed.status == "passed" and passed.ci_high is not None and passed.ci_high < 0.01, passed.reason
    # Disparity 0.02 -> 0.10 on every axis: even the lower bound is over 0.01.
    a, b = _pair(rng, 40, 0.02, 0.10, noise=0.05)
    failed = bias_gate(_scores(a), _scores(b), cfg)
    assert failed.status == "failed" and failed.ci_low is not None and failed.ci_low > 0.01 and not failed.passed
    # Same disparity but very noisy, 5 templates: not shown worse, not shown safe; it names a template count.
    a, b = _pair(rng, 5, 0.02, 0.02, noise=0.6, shared=0.0)
    unsure = bias_gate(_scores(a), _scores(b), cfg)
    assert unsure.status == "inconclusive" and unsure.needed is not None and unsure.needed > 5
    assert "would settle" in unsure.reason and unsure.n == 5
    # Two templates: no interval, inconclusive (never failed).
    two = bias_gate(_scores({k: v[:2] for k, v in a.items()}), _scores({k: v[:2] for k, v in b.items()}), cfg)
    assert two.status == "inconclusive" and two.needed == 3
    # Probes switched off for both: skipped, which does not block.
    off = bias_gate(ModelScores(2.0, 100, None, 0, None, None, 0), ModelScores(2.0, 100, None, 0, None, None, 0), cfg)
    assert off.status == "skipped" and off.passed


def test_identical_challenger_never_fails() -> None:
    """Property over random matrices (any noise, missing cells, any tolerance including 0): the paired
    difference is exactly 0 with a 0-width interval, so the gate passes."""
    rng = np.random.default_rng(13)
    for i in range(200):
        templates = int(rng.integers(4, 30))  # a missing cell below still leaves the 3 the jackknife needs
        cells = {f"axis{k}": rng.normal(rng.normal(), rng.uniform(0.01, 1.0), size=(templates, int(rng.integers(2, 8))))
                 for k in range(int(rng.integers(1, 4)))}
        if i % 3 == 0:
            cells["axis0"][0, 0] = np.nan
        tol = float(rng.choice([0.0, 0.001, 0.01, 0.1]))
        result = bias_gate(_scores(cells), _scores(cells), GateConfig(max_bias_disparity_increase=tol))
        assert result.status == "passed" and result.estimate == result.ci_low == result.ci_high == 0.0


def test_settle_count_is_monotone_and_the_advised_number_settles() -> None:
    # Monotone: the closer the estimate to the tolerance, the more units it takes.
    needs = [units_to_settle(Interval(e, e - 0.02, e + 0.02, 10, "t"), 0.01) for e in (-0.02, -0.01, 0.0, 0.005)]
    assert all(n is not None for n in needs) and needs == sorted(needs) and needs[-1] > 10
    # A simulated case: same disparity for both models, 6 templates: inconclusive with an estimate near 0. The
    # count it names is where the bound would reach the tolerance if the estimate held, so fresh draws of that
    # size pass about half the time (the bound is as likely above as below); 2.5 times it (the usual 80%-power
    # factor ((1.645 + 0.842) / 1.645)^2 ~ 2.3) nearly always passes. Neither ever fails.
    rng = np.random.default_rng(21)
    cfg = GateConfig()
    needed = None
    while needed is None:
        a, b = _pair(rng, 6, 0.02, 0.02)
        first = bias_gate(_scores(a), _scores(b), cfg)
        if first.status == "inconclusive" and first.estimate is not None and abs(first.estimate) < 0.002:
            needed = first.needed
    assert needed is not None and 6 < needed < 2000
    at = [bias_gate(*map(_scores, _pair(rng, needed, 0.02, 0.02)), cfg).status for _ in range(40)]
    assert 12 <= at.count("passed") <= 32 and "failed" not in at, at
    more = [bias_gate(*map(_scores, _pair(rng, math.ceil(2.5 * needed), 0.02, 0.02)), cfg).status for _ in range(40)]
    assert more.count("passed") >= 34 and "failed" not in more, more


def test_false_failures_on_same_distribution_models() -> None:
    """Same true disparity (0.02) for both models, 10 templates, the strictest tolerance 0: the one-sided 95%
    lower bound is over 0 in at most 5% of runs (binomial allowance: 3 standard errors)."""
    rng = np.random.default_rng(31)
    runs = 600
    fails = sum(non_inferiority(paired_disparity_difference(*_pair(rng, 10, 0.02, 0.02), confidence=0.9), 0.0)
                == "failed" for _ in range(runs))
    assert fails / runs <= fpr_bound(0.05, runs)


def test_false_passes_at_the_margin() -> None:
    """The error that matters most for a non-inferiority test: a challenger whose disparity rose by exactly the
    tolerance (0.02 -> 0.03) is passed in at most 5% of runs."""
    rng = np.random.default_rng(37)
    runs = 600
    passes = sum(non_inferiority(paired_disparity_difference(*_pair(rng, 10, 0.02, 0.03), confidence=0.9), 0.01)
                 == "passed" for _ in range(runs))
    assert passes / runs <= fpr_bound(0.05, runs)


def test_power_against_a_real_increase() -> None:
    """Disparity 0.02 -> 0.12 on each axis (a pairwise gap of ~0.14 grown to ~0.35) at the default 10 templates
    and 15 groups: failed in >= 85% of runs (measured 93%; 0.02 -> 0.10 fails in ~78%, with 20 templates in
    ~100%); and same-disparity models at the default 40 templates pass in >= 50% and never fail."""
    rng = np.random.default_rng(41)
    cfg = GateConfig()
    worse = [bias_gate(*map(_scores, _pair(rng, 10, 0.02, 0.12)), cfg).status for _ in range(200)]
    assert worse.count("failed") / len(worse) >= 0.85
    # At the defaults (40 templates), cell noise 0.25 (SmolLM2's 6-group axes: ~0.28) and half the noise shared:
    # same-disparity models pass in ~61% of runs (0.30 noise: ~50%; 0.20: ~75%), the rest inconclusive.
    same = [bias_gate(*map(_scores, _pair(rng, 40, 0.02, 0.02, noise=0.25)), cfg).status for _ in range(200)]
    assert same.count("passed") / len(same) >= 0.5 and "failed" not in same
