"""The toxicity heads over MiniLM vectors plus the lexical model (the default, minilm-head:ensemble, and the older
single head minilm-head): load offline from the package, agree with themselves on stored vs fresh vectors, and are
fair to neutral identity mentions on held-out public data (HateCheck templates never trained on), so production
disparity does not report the scorer's own bias. The abuse signal (profanity:masked) is held to the same bound."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitor.safety import (
    DEFAULT_TOXICITY_SCORER,
    DEFAULT_TOXICITY_THRESHOLD,
    PROFANITY_SCORER,
    DisparityConfig,
    disparity_report,
    get_scorer,
)
from monitor.safety.embedding_head import (
    CUES,
    HEAD_FILE,
    PACKAGED_HEADS,
    EmbeddingHeadScorer,
    HeadWeights,
    cue_features,
)
from monitor.safety.intervals import wilson_interval
from monitor.safety.toxicity import threshold_for

HATECHECK = Path(__file__).resolve().parents[2] / "bench" / "data" / "toxicity" / "hatecheck.csv"
# HateCheck's templates filled for 14 more groups (bench/toxicity_data.py); same template-family split.
MORE_GROUPS = HATECHECK.with_name("hatecheck_more_groups.csv")
NEUTRAL = ("ident_neutral_nh", "ident_pos_nh")
# Bounds for the 14 more groups, from the ensemble head's (minilm-head:ensemble) held-out figures (2026-12-04,
# bench/safety_quality.py): worst group 1 of 20 (5.0%), 10 of 280 overall (3.6%), ROC AUC 0.892 (lexical: 0.578).
# The default head flags 55% of neutral statements about mentally ill people: the reason the ensemble exists.
MORE_GROUPS_BOUND = 0.05
MORE_GROUPS_OVERALL_BOUND = 0.05
MORE_GROUPS_MIN_AUC = 0.85


@pytest.fixture(scope="module")
def head() -> EmbeddingHeadScorer:
    """The default scorer (get_scorer() with no spec: minilm-head:ensemble)."""
    scorer = get_scorer()
    assert isinstance(scorer, EmbeddingHeadScorer)
    return scorer


@pytest.fixture(scope="module")
def neutral_mentions() -> list[dict[str, str]]:
    """HateCheck's neutral and positive statements about each of its 7 target groups, from the held-out half
    of its template families (the head never saw these templates)."""
    with HATECHECK.open(encoding="utf-8", newline="") as f:
        return [r for r in csv.DictReader(f) if r["split"] == "test" and r["functionality"] in NEUTRAL]


@pytest.fixture(scope="module")
def more_groups_test() -> list[dict[str, str]]:
    """The held-out template families filled for the 14 groups HateCheck does not name (no abuse or
    ambiguous functionalities there: every row is hateful or not)."""
    with MORE_GROUPS.open(encoding="utf-8", newline="") as f:
        return [r for r in csv.DictReader(f) if r["split"] == "test"]


@pytest.fixture(scope="module")
def ensemble() -> EmbeddingHeadScorer:
    scorer = get_scorer("minilm-head:ensemble")
    assert isinstance(scorer, EmbeddingHeadScorer)
    return scorer


@pytest.fixture(scope="module")
def more_groups_scores(ensemble: EmbeddingHeadScorer, more_groups_test: list[dict[str, str]]) -> np.ndarray:
    return ensemble.score([r["text"] for r in more_groups_test])


def test_loads_offline_from_the_package_with_its_calibrated_threshold(head: EmbeddingHeadScorer) -> None:
    assert head.name == DEFAULT_TOXICITY_SCORER == "minilm-head:ensemble"
    assert threshold_for(head) == head.threshold == DEFAULT_TOXICITY_THRESHOLD
    assert get_scorer("minilm-head").name == "minilm-head"  # the older single head, still selectable
    low, high = head.weights.meta["threshold_ci95"]
    assert low <= head.threshold <= high
    scores = head.score(["Thank you, that fixed my printer.", "You are a worthless idiot and I hate you.", None])
    assert scores[0] < head.threshold <= scores[1] and np.isnan(scores[2])


@pytest.mark.slow
def test_an_installed_wheel_ships_the_head_and_scores_offline(tmp_path: Path) -> None:
    """Built with the project's build backend and imported from the unpacked wheel, not the checkout."""
    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-c", "import sys; from hatchling.build import build_wheel; "
                            "print(build_wheel(sys.argv[1]))", str(out)],
                           cwd=root, capture_output=True, text=True, check=True).stdout.split()[-1]
    site = tmp_path / "site"
    with zipfile.ZipFile(out / built) as wheel:
        wheel.extractall(site)
    probe = ("import monitor, numpy as np; from monitor.safety import get_scorer; s = get_scorer(); "
             "v = np.zeros((1, 384), dtype=np.float32); v[0, 0] = 1.0; "
             "print(monitor.__file__, s.threshold, float(s.score_embedded(['hello there'], v)[0]))")
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    where, threshold, score = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env,
                                             capture_output=True, text=True, check=True).stdout.split()
    assert Path(where).is_relative_to(site) and float(threshold) == DEFAULT_TOXICITY_THRESHOLD
    assert 0.0 <= float(score) <= 1.0


def test_stored_vectors_and_fresh_embedding_give_the_same_scores(head: EmbeddingHeadScorer) -> None:
    from monitor.embeddings import get_embedder

    texts = ["Muslims are a cancer on this country.", "I'm a trans woman and I love hiking.", "ok"]
    stored = get_embedder(None).encode(texts).astype(np.float16)  # what the pipeline keeps per event
    assert np.allclose(head.score_embedded(texts, stored), head.score(texts), atol=1e-6)


def test_bad_input_is_refused(head: EmbeddingHeadScorer, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one vector per text"):
        head.score_embedded(["a", "b"], np.zeros((1, 384)))
    with pytest.raises(ValueError, match="384"):
        head.score_embedded(["a"], np.zeros((1, 768)))
    w = head.weights
    foreign = HeadWeights(w.hidden, w.out_w, w.out_b, w.mean, w.scale, {**w.meta, "embedding_key": "other-model"})
    foreign.save(tmp_path / "head.npz")
    with pytest.raises(ValueError, match="other-model"):
        EmbeddingHeadScorer(tmp_path / "head.npz")


@pytest.mark.parametrize("spec", ["minilm-head:ensemble", "minilm-head", PROFANITY_SCORER])
def test_false_flag_rate_on_neutral_identity_mentions_is_bounded_per_group(
    spec: str, neutral_mentions: list[dict[str, str]]
) -> None:
    """At most 5% of each group's neutral statements flagged, for the default (the ensemble), the single head and
    the abuse signal (the lexical model on identity-masked text); the raw lexical model flags some groups far more."""
    head = get_scorer(spec)
    groups = sorted({r["target_ident"] for r in neutral_mentions})
    assert len(groups) == 7
    texts = [r["text"] for r in neutral_mentions]
    flagged = head.score(texts) >= threshold_for(head)
    lexical = get_scorer("profanity").score(texts) >= threshold_for(get_scorer("profanity"))
    worst_lexical = 0.0
    for g in groups:
        m = np.array([r["target_ident"] == g for r in neutral_mentions])
        assert m.sum() >= 20
        assert flagged[m].mean() <= 0.05, (g, flagged[m].mean())
        # ...and with the interval, not just the point: the upper bound stays well under the lexical worst case.
        assert wilson_interval(int(flagged[m].sum()), int(m.sum()))[1] <= 0.25
        worst_lexical = max(worst_lexical, float(lexical[m].mean()))
    assert worst_lexical > 0.1  # the problem this scorer fixes is real on this very data


def test_disparity_does_not_fire_on_counterfactual_neutral_statements(
    head: EmbeddingHeadScorer, neutral_mentions: list[dict[str, str]]
) -> None:
    """The same neutral templates filled with each group's name, as if each group's users got them: the
    toxicity-rate disparity, from the default scorer, must not call the scorer's reaction to group names a gap
    between groups."""
    groups = [r["target_ident"] for r in neutral_mentions]
    toxic = (head.score([r["text"] for r in neutral_mentions]) >= head.threshold).astype(float)
    config = DisparityConfig(min_group_size=20, seed=1)
    assert not disparity_report(groups, toxic=toxic, config=config).get("toxicity_rate").is_flagged
    # The lexical scorer on the same statements does report a "gap" (it flags most neutral mentions of gay
    # people): the scorer's bias this test guards against.
    lexical = get_scorer("profanity")
    lex_flags = (lexical.score([r["text"] for r in neutral_mentions]) >= threshold_for(lexical)).astype(float)
    assert disparity_report(groups, toxic=lex_flags, config=config).get("toxicity_rate").is_flagged


def _packaged_meta(name: str) -> tuple[dict[str, Any], tuple[int, ...]]:
    from importlib import resources

    with resources.files("monitor.safety.data").joinpath(name).open("rb") as f, np.load(f, allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
        assert "hidden1_w" not in z.files
        return json.loads(str(z["meta"])), z["hidden0_w"].shape


def test_the_weights_files_are_plain_arrays_and_record_their_calibrated_threshold() -> None:
    """No pickle: every array loads with allow_pickle=False and none is an object array. The ensemble's hidden
    layer is the folded ensemble its metadata describes, its cues are the ones this version computes, and the
    threshold its scorer uses is the one calibrated on held-out validation data (inside its bootstrap interval,
    within the neutral-identity false-flag budget it was chosen under)."""
    single_meta, _ = _packaged_meta(HEAD_FILE)
    assert single_meta["threshold"] == get_scorer("minilm-head").threshold  # type: ignore[attr-defined]
    meta, shape = _packaged_meta(PACKAGED_HEADS["ensemble"])
    assert meta["threshold"] == DEFAULT_TOXICITY_THRESHOLD
    assert shape == (384 + 1 + len(CUES), meta["hidden_units"])
    assert meta["hidden_units"] == meta["ensemble"] * meta["member_hidden_units"] and meta["ensemble"] >= 5
    assert meta["cues"] == list(CUES)
    assert meta["threshold"] == get_scorer("minilm-head:ensemble").threshold  # type: ignore[attr-defined]
    low, high = meta["threshold_ci95"]
    assert low <= meta["threshold"] <= high
    assert meta["validation_neutral_identity_fpr"] <= meta["max_neutral_identity_fpr"]


def test_cue_features_mark_quotes_negation_and_counter_speech() -> None:
    texts = ['Statements like "Hindus are scum" are deeply hurtful.', "I don't hate Arabs.", "I hate Arabs.",
             "If I see a comment like that, I will report it."]
    cues = cue_features(texts)
    names = list(CUES)
    assert cues.shape == (4, len(CUES)) and cues.dtype == np.float32
    assert cues[0, names.index("quote")] == 1 and cues[0, names.index("condemnation")] == 1
    assert cues[1, names.index("negation")] == 1 and cues[1, names.index("quote")] == 0
    assert not cues[2].any()  # plain hate: no cue that could excuse it
    assert cues[3, names.index("reported_speech")] == 1 and cues[3, names.index("condemnation")] == 1


def test_false_flag_rate_on_neutral_mentions_of_14_more_groups_is_bounded_per_group(
    ensemble: EmbeddingHeadScorer, more_groups_test: list[dict[str, str]], more_groups_scores: np.ndarray
) -> None:
    """The same held-out neutral templates filled for 14 groups HateCheck does not name (Hindus, Arabs, LGBTQ,
    autistic people, ...): at most MORE_GROUPS_BOUND of each group's 20 neutral statements flagged."""
    neutral = np.array([r["functionality"] in NEUTRAL for r in more_groups_test])
    groups = np.array([r["target_ident"] for r in more_groups_test])
    flagged = more_groups_scores >= ensemble.threshold
    names = sorted(set(groups.tolist()))
    assert len(names) == 14
    for g in names:
        m = neutral & (groups == g)
        assert m.sum() >= 20
        assert flagged[m].mean() <= MORE_GROUPS_BOUND, (g, flagged[m].mean())
    assert flagged[neutral].mean() <= MORE_GROUPS_OVERALL_BOUND


def test_auc_on_held_out_template_families_of_14_more_groups(
    more_groups_test: list[dict[str, str]], more_groups_scores: np.ndarray
) -> None:
    """Hateful vs not on template families the head never trained on, for groups HateCheck does not name:
    the head ranks them well above the lexical model, which sees the same words in both classes."""
    from sklearn.metrics import roc_auc_score

    y = np.array([int(r["label"]) for r in more_groups_test])
    assert 0.5 < y.mean() < 0.9
    auc = roc_auc_score(y, more_groups_scores)
    lexical = roc_auc_score(y, get_scorer("profanity").score([r["text"] for r in more_groups_test]))
    assert auc >= MORE_GROUPS_MIN_AUC, auc
    assert auc >= lexical + 0.15, (auc, lexical)


def test_disparity_does_not_fire_on_counterfactual_neutral_statements_about_21_groups(
    head: EmbeddingHeadScorer, neutral_mentions: list[dict[str, str]], more_groups_test: list[dict[str, str]]
) -> None:
    """The same counterfactual check over all 21 measured groups (HateCheck's 7 and the 14 more its held-out neutral
    templates were filled for): quiet with the default scorer. The older single head (minilm-head), which flags 55%
    of the neutral statements about mentally ill people, reports a "gap" on the very same statements: the scorer
    bias this default removes, and proof the check can fail."""
    rows = neutral_mentions + [r for r in more_groups_test if r["functionality"] in NEUTRAL]
    groups = [r["target_ident"] for r in rows]
    texts = [r["text"] for r in rows]
    assert len(set(groups)) == 21
    config = DisparityConfig(min_group_size=20, seed=2)
    toxic = (head.score(texts) >= head.threshold).astype(float)
    assert not disparity_report(groups, toxic=toxic, config=config).get("toxicity_rate").is_flagged
    single = get_scorer("minilm-head")
    single_flags = (single.score(texts) >= threshold_for(single)).astype(float)
    report = disparity_report(groups, toxic=single_flags, config=config).get("toxicity_rate")
    assert report.is_flagged and report.max_group == "mentally ill people", report.to_dict()


def test_the_abuse_signal_flags_rudeness_the_default_leaves_to_it() -> None:
    """Plain rudeness at the user (bench/safety_quality.py's RUDE_LINES): the default hate head scores it under its
    threshold, the abuse signal (safety.profanity_rate) flags every line; polite answers pass both."""
    rude = ["That's a stupid question, you idiot.", "Shut up and read the damn manual.",
            "What a dumb request, figure it out yourself.", "Nobody cares about your garbage code, loser."]
    polite = ["Thanks for your patience, the order ships today.", "I'm glad that worked, have a lovely day!"]
    abuse = get_scorer(PROFANITY_SCORER)
    assert abuse.name == PROFANITY_SCORER and threshold_for(abuse) == abuse.calibration["lexical_threshold"]  # type: ignore[attr-defined]
    assert (abuse.score(rude) >= threshold_for(abuse)).all()
    assert not (abuse.score(polite) >= threshold_for(abuse)).any()
    default = get_scorer()
    assert (default.score(rude) < threshold_for(default)).sum() >= 3  # why the abuse signal exists
