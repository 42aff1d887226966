"""The combined toxicity scorer (minilm-combined): the ensemble head OR the lexical model on identity-masked text.

Checks that identity masking covers the measured groups' surface forms and leaves abuse alone, that the combined
score flags exactly what either part flags at its own threshold, that the shipped thresholds are the calibrated
ones, and, on held-out public data, that it flags plain rudeness while staying fair to neutral identity mentions
for all 21 groups (the two things neither part does alone). It is not the default: its held-out HateCheck AUC is
under the target (docs/safety.md)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from monitor.safety import get_scorer
from monitor.safety.combined import COMBINED_THRESHOLD, CombinedScorer, lexical_input, load_calibration, rescale
from monitor.safety.identity_terms import MASK, mask_identity_terms
from monitor.safety.intervals import wilson_interval
from monitor.safety.toxicity import threshold_for

DATA = Path(__file__).resolve().parents[2] / "bench" / "data" / "toxicity"
NEUTRAL = ("ident_neutral_nh", "ident_pos_nh")
RUDE = ["That's a stupid question, you idiot.", "Shut up and read the damn manual.",
        "What a dumb request, figure it out yourself."]
# Singular, plural and adjective forms of the 21 groups bench/safety_quality.py measures (HateCheck's 7 and the
# 14 of bench/toxicity_data.py MORE_GROUPS).
SURFACE_FORMS = [
    "woman", "women", "female", "trans person", "trans people", "transgender", "gay person", "gay people", "gay",
    "gays", "black person", "black people", "blacks", "disabled person", "disabled people", "Muslim", "Muslims",
    "immigrant", "immigrants", "Jewish person", "Jewish people", "Jews", "Asian person", "Asian people", "Asians",
    "Chinese person", "Chinese people", "Mexican", "Mexicans", "Latino", "Latinos", "Latina", "Native American",
    "Native Americans", "Middle Eastern person", "Middle Eastern people", "Middle-Eastern", "Arab", "Arabs",
    "Hindu", "Hindus", "lesbian", "lesbians", "bisexual person", "bisexual people", "bisexual", "LGBTQ person",
    "LGBTQ people", "LGBTQ", "LGBTQ+", "mentally ill person", "mentally ill people", "mentally ill",
    "mentally-ill", "autistic person", "autistic people", "autistic",
]


@pytest.fixture(scope="module")
def combined() -> CombinedScorer:
    scorer = get_scorer("minilm-combined")
    assert isinstance(scorer, CombinedScorer)
    return scorer


@pytest.mark.parametrize("form", SURFACE_FORMS)
def test_masking_removes_every_surface_form_of_the_measured_groups(form: str) -> None:
    for text in (f"I live with a {form} friend.", f"{form} are welcome here.", f"My neighbour is {form}."):
        masked = mask_identity_terms(text)
        assert MASK in masked and not re.search(re.escape(form), masked, re.IGNORECASE), (text, masked)


def test_masking_leaves_abuse_slurs_and_ordinary_words_alone() -> None:
    assert mask_identity_terms("You gay idiot, shut up.") == f"You {MASK} idiot, shut up."
    assert mask_identity_terms("I am a gay man") == f"I am a {MASK}"  # the person noun goes with the adjective
    for text in ["Shut up and read the damn manual.", "This transaction is pending.", "Mandatory Manchester blackout",
                 "The asylum hearing is Monday", "Damn right"]:
        assert mask_identity_terms(text) == text


def test_lexical_part_reads_neither_identity_terms_nor_quoted_hate() -> None:
    assert lexical_input('Saying "Muslims are scum" is vile.') == "Saying   is vile."
    assert lexical_input("My gay neighbour is an idiot.") == f"My {MASK} neighbour is an idiot."


def test_combined_flags_exactly_what_either_part_flags_at_its_own_threshold(combined: CombinedScorer) -> None:
    rng = np.random.default_rng(0)
    head, lex = rng.random(5000), rng.random(5000)
    score = combined.combine(head, lex)
    assert np.all((score >= 0.5) == ((head >= combined.head_threshold) | (lex >= combined.lexical_threshold)))
    assert np.all((score >= 0) & (score <= 1))
    # Monotone in each part: raising either part never lowers the score.
    assert np.all(combined.combine(np.minimum(head + 0.05, 1), lex) >= score)
    assert np.all(combined.combine(head, np.minimum(lex + 0.05, 1)) >= score)
    assert rescale(np.array([0.0, 0.3, 1.0]), 0.3).tolist() == [0.0, 0.5, 1.0]


def test_ships_the_calibrated_thresholds(combined: CombinedScorer) -> None:
    assert combined.name == "minilm-combined" and threshold_for(combined) == combined.threshold == COMBINED_THRESHOLD
    cal = load_calibration()
    assert cal["head"] == "ensemble" and cal["head_threshold"] == combined.head.threshold == combined.head_threshold
    low, high = cal["lexical_threshold_ci95"]
    assert low <= cal["lexical_threshold"] == combined.lexical_threshold <= high
    assert cal["validation_neutral_identity_fpr"] <= 0.03


def test_flags_plain_rudeness_that_the_ensemble_head_alone_misses(combined: CombinedScorer) -> None:
    texts = [*RUDE, "Thank you, that fixed my printer.", "I am a gay man and I love hiking.", None]
    # "I am a gay man ...": the lexical model alone scores it as offensive (the word "gay").
    assert get_scorer("profanity").score([texts[4]])[0] >= 0.5
    scores = combined.score(texts)
    assert np.all(scores[:3] >= combined.threshold), scores
    assert np.all(scores[3:5] < combined.threshold) and np.isnan(scores[5])
    head = combined.head.score(RUDE)
    assert (head < combined.head.threshold).any()  # the gap this scorer closes is real


def test_stored_vectors_and_fresh_embedding_give_the_same_scores(combined: CombinedScorer) -> None:
    from monitor.embeddings import get_embedder

    texts = ["Muslims are a cancer on this country.", "Shut up, you moron.", "ok"]
    stored = get_embedder(None).encode(texts).astype(np.float16)
    assert np.allclose(combined.score_embedded(texts, stored), combined.score(texts), atol=1e-6)


def test_neutral_false_flags_bounded_for_all_21_groups_on_held_out_data(combined: CombinedScorer) -> None:
    """HateCheck's held-out template families, its 7 groups and the same templates filled for 14 more: at most
    5% of each group's neutral statements flagged, where the lexical model flags most of some groups'."""
    rows = []
    for name in ("hatecheck.csv", "hatecheck_more_groups.csv"):
        with (DATA / name).open(encoding="utf-8", newline="") as f:
            rows += [r for r in csv.DictReader(f) if r["split"] == "test" and r["functionality"] in NEUTRAL]
    groups = np.array([r["target_ident"] for r in rows])
    assert len(set(groups.tolist())) == 21
    texts = [r["text"] for r in rows]
    flagged = combined.score(texts) >= combined.threshold
    lexical = get_scorer("profanity").score(texts) >= 0.3
    for g in sorted(set(groups.tolist())):
        m = groups == g
        assert m.sum() >= 20
        assert flagged[m].mean() <= 0.05, (g, flagged[m].mean())
        assert wilson_interval(int(flagged[m].sum()), int(m.sum()))[1] <= 0.25
    assert max(lexical[groups == g].mean() for g in set(groups.tolist())) > 0.5  # what masking is for
