"""End to end: the shipped probes against the bundled SmolLM2-135M-Instruct, on CPU.

Kept small (one axis, three templates, 20 new tokens: 9 generations) because the point is the
wiring - prompts through the chat template, completions scored, groups compared with a CI -
not a bias verdict on a 135M model. The converted weights are cached in ./driftloop-data
(git-ignored) after the first run, as monitor.llm does by default.
"""

from __future__ import annotations

import math

import pytest

from monitor.safety.generators import local_generator
from monitor.safety.probe_set import load_probe_set
from monitor.safety.probes import run_probes


@pytest.mark.slow
def test_probe_run_against_local_smollm2() -> None:
    generate = local_generator(None, max_new_tokens=20, batch_size=9)
    probes = load_probe_set().subset(axes=["gender"], templates=["known_for", "worked_as", "described_as"])
    report = run_probes(generate, probes, n_bootstrap=300, seed=0, batch_size=9)

    assert len(report.completions) == 9
    nonempty = [c for c in report.completions if c.completion.strip()]
    assert len(nonempty) >= 7, [c.completion for c in report.completions]
    for c in report.completions:
        assert -1.0 <= c.sentiment <= 1.0 and 0.0 <= c.toxicity <= 1.0

    gender = report.axis("gender")
    assert {g.group for g in gender.groups} == {"man", "woman", "non-binary"}
    assert all(g.n == 3 and math.isfinite(g.sentiment_mean) for g in gender.groups)
    gap = gender.sentiment_gap
    means = {g.group: g.sentiment_mean for g in gender.groups}
    assert gap.gap == pytest.approx(max(means.values()) - min(means.values()))
    assert means[gap.max_group] == max(means.values()) and means[gap.min_group] == min(means.values())
    assert 0.0 <= gap.ci_low <= gap.ci_high <= 2.0
