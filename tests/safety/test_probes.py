from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from monitor.safety.probe_set import load_probe_set
from monitor.safety.probes import mask_group_term, paired_gap_bootstrap, run_probes
from monitor.safety.toxicity import ProfanityScorer

SHIPPED_AXES = {
    "gender",
    "race_ethnicity",
    "religion",
    "nationality",
    "age",
    "disability",
    "sexual_orientation",
}


def biased_fake_model(disfavoured: str):
    """Test double for a model: a deterministic template-based 'LLM' that answers warmly about
    everyone except people described by ``disfavoured``, about whom it is hostile."""

    def generate(prompts: list[str]) -> list[str]:
        return [
            "They were lazy, dishonest and hated by everyone."
            if disfavoured in p
            else "They were kind, generous and admired by their friends."
            for p in prompts
        ]

    return generate


def echo_fake_model(prompts: list[str]) -> list[str]:
    """Test double that repeats the sentence beginning and adds a neutral ending."""
    return [p.split(": ", 1)[1] + " the local library." for p in prompts]


def test_shipped_probe_set_shape() -> None:
    ps = load_probe_set()
    assert set(ps.axis_names) == SHIPPED_AXES
    assert len(ps.templates) == 40  # 10 original, 30 added for the retraining bias gate
    for axis in ps.axes:
        assert 2 <= len(axis.groups) <= 6
    probes = ps.probes()
    assert len(probes) == len(ps.templates) * sum(len(g.terms) for a in ps.axes for g in a.groups)
    for p in probes:
        assert p.term in p.sentence and p.sentence in p.prompt and "{" not in p.prompt


def test_subset_and_bad_probe_sets(tmp_path: Path) -> None:
    ps = load_probe_set()
    small = ps.subset(axes=["age"], templates=["worked_as", "known_for"])
    assert small.axis_names == ("age",) and len(small.probes()) == 2 * 3
    with pytest.raises(ValueError, match="unknown axes"):
        ps.subset(axes=["height"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntemplates: [{id: a, text: 'no placeholder'}]\naxes: {g: {a: [x], b: [y]}}\n")
    with pytest.raises(ValueError, match="lacks '\\{person\\}'"):
        load_probe_set(bad)
    bad.write_text("name: x\naxes: {}\n")
    with pytest.raises(ValueError, match="malformed probe set"):
        load_probe_set(bad)


def test_custom_probe_set_from_json(tmp_path: Path) -> None:
    path = tmp_path / "probes.json"
    path.write_text(
        json.dumps(
            {
                "name": "mine",
                "instruction": "{prompt}",
                "templates": [
                    {"id": "t1", "text": "The {person} is"},
                    {"id": "t2", "text": "A {person} was"},
                ],
                "axes": {"pets": {"cat": ["cat owner"], "dog": ["dog owner", "dog walker"]}},
            }
        )
    )
    ps = load_probe_set(path)
    assert [p.prompt for p in ps.probes()][:2] == ["The cat owner is", "A cat owner was"]
    assert len(ps.probes()) == 6


def test_run_probes_finds_the_disfavoured_group_with_a_ci() -> None:
    ps = load_probe_set().subset(axes=["religion", "age"])
    seen: list[tuple[int, int]] = []
    report = run_probes(
        biased_fake_model("Buddhist person"),
        ps,
        n_bootstrap=300,
        seed=1,
        progress=lambda done, total: seen.append((done, total)),
    )
    religion = report.axis("religion")
    assert religion.sentiment_gap.min_group == "Buddhist"
    gap = religion.sentiment_gap
    assert gap.gap > 1.0 and gap.ci_low <= gap.gap <= gap.ci_high and gap.ci_low > 0.5
    buddhist = next(g for g in religion.groups if g.group == "Buddhist")
    assert buddhist.n == len(ps.templates) and buddhist.sentiment_mean < -0.5
    # Age was treated identically: zero gap, and a zero-width interval.
    age = report.axis("age").sentiment_gap
    assert age.gap == 0.0 and age.ci_low == 0.0 and age.ci_high == 0.0
    # Progress reached the total, monotonically.
    assert seen[-1] == (len(ps.probes()), len(ps.probes()))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    # Raw completions are kept for inspection and reuse.
    assert len(report.completions) == len(ps.probes())
    assert {c.completion for c in report.completions if c.group == "Buddhist"} == {
        "They were lazy, dishonest and hated by everyone."
    }
    json.dumps(report.to_dict(), allow_nan=False)


def test_run_probes_is_reproducible_for_a_seed() -> None:
    ps = load_probe_set().subset(axes=["gender"])
    a = run_probes(biased_fake_model("woman"), ps, n_bootstrap=200, seed=3)
    b = run_probes(biased_fake_model("woman"), ps, n_bootstrap=200, seed=3)
    assert a.to_dict() == b.to_dict()


def test_group_term_masking_removes_scorer_identity_bias() -> None:
    # The profanity model reacts to the word "gay" itself. The echo model treats everyone the
    # same, so a toxicity gap would be pure scorer bias; masking the group term removes it.
    ps = load_probe_set().subset(axes=["sexual_orientation"])
    unmasked = run_probes(
        echo_fake_model, ps, n_bootstrap=50, mask_group_terms=False, toxicity_scorer=ProfanityScorer()
    )
    masked = run_probes(echo_fake_model, ps, n_bootstrap=50)
    tox = {g.group: g.toxicity_mean for g in unmasked.axis("sexual_orientation").groups}
    assert tox["gay"] > tox["straight"] + 0.05
    masked_tox = {g.group: g.toxicity_mean for g in masked.axis("sexual_orientation").groups}
    assert max(masked_tox.values()) - min(masked_tox.values()) < 1e-9
    assert "gay person" in next(c.completion for c in masked.completions if c.group == "gay")


def test_mask_group_term_whole_words_only() -> None:
    assert mask_group_term("The Lesbian said hi to lesbians.", "lesbian") == "The person said hi to lesbians."


def test_generator_contract_is_checked() -> None:
    with pytest.raises(ValueError, match="returned 1 completions for 2 prompts"):
        run_probes(lambda ps: ["x"], load_probe_set().subset(axes=["age"]), batch_size=2)
    with pytest.raises(TypeError, match="expected str"):
        run_probes(lambda ps: [None] * len(ps), load_probe_set().subset(axes=["age"]))  # type: ignore[list-item]


def test_paired_bootstrap_cancels_template_effects() -> None:
    rng = np.random.default_rng(0)
    cells = rng.normal(0, 0.1, (10, 3)) + np.array([0.0, 0.0, -0.3])
    shifted = cells + rng.normal(0, 5.0, (10, 1))  # huge per-template offsets, same for every group
    a = paired_gap_bootstrap(cells, ["a", "b", "c"], "s", n_bootstrap=400, rng=np.random.default_rng(1))
    b = paired_gap_bootstrap(shifted, ["a", "b", "c"], "s", n_bootstrap=400, rng=np.random.default_rng(1))
    assert (a.ci_low, a.ci_high, a.gap) == pytest.approx((b.ci_low, b.ci_high, b.gap), abs=1e-9)
    assert a.min_group == "c"


def test_paired_bootstrap_ci_coverage() -> None:
    # True gap 0.3 (group c lower), 10 templates, template and cell noise. Percentile bootstrap
    # over 10 clusters undercovers a little: measured 0.925 for nominal 0.95 over 200 trials
    # (sd ~0.019), so require >= 0.85.
    covered = 0
    for s in range(200):
        rng = np.random.default_rng(s)
        cells = rng.normal(0, 0.3, (10, 1)) + np.array([0.0, 0.0, -0.3]) + rng.normal(0, 0.15, (10, 3))
        gap = paired_gap_bootstrap(cells, ["a", "b", "c"], "s", n_bootstrap=500, rng=rng)
        covered += gap.ci_low <= 0.3 <= gap.ci_high
    assert covered / 200 >= 0.85


def test_default_scorer_reports_no_toxicity_gap_on_counterfactual_neutral_probes_even_unmasked() -> None:
    """Every probe answered with the same neutral sentence naming its group ("The gay person was known for the local
    library."), scored by the default scorer *without* masking the group term: no axis shows a toxicity-rate gap, so
    the probes' gap is the model's, not the scorer's reaction to group names. (The lexical model on the same
    completions does react: test_group_term_masking_removes_scorer_identity_bias.)"""
    from monitor.safety import DEFAULT_TOXICITY_SCORER, get_scorer

    scorer = get_scorer(DEFAULT_TOXICITY_SCORER)
    report = run_probes(echo_fake_model, load_probe_set(), n_bootstrap=50, mask_group_terms=False,
                        toxicity_scorer=scorer)
    assert {a.axis for a in report.axes} == SHIPPED_AXES
    for axis in report.axes:
        assert all(g.toxicity_rate == 0.0 for g in axis.groups), (axis.axis, [(g.group, g.toxicity_rate)
                                                                              for g in axis.groups])
        assert axis.toxicity_rate_gap.gap == 0.0 and axis.toxicity_rate_gap.ci_high == 0.0
