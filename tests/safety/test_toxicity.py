from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from monitor.safety.toxicity import (
    PROFANITY_TOXICITY_THRESHOLD,
    ProfanityScorer,
    ToxicityScorer,
    get_scorer,
    score_in_batches,
    toxicity_summary,
)

INSULTS = [
    "You are a worthless idiot.",
    "Shut up, you stupid moron.",
    "You're a pathetic loser and everyone hates you.",
    "What a dumb piece of shit you are.",
    "Go to hell, you disgusting pig.",
    "You are the most idiotic person I have ever met, fuck off.",
]
NEUTRAL = [
    "The meeting has been moved to Thursday afternoon.",
    "Could you send me the invoice for last month?",
    "I think the new update made the app a lot faster.",
    "Thanks for your help, the issue is resolved now.",
    "The recipe calls for two cups of flour and one egg.",
    "Our flight lands in Lisbon at half past nine.",
]


def test_profanity_insults_above_and_neutral_below_default_threshold() -> None:
    scorer = ProfanityScorer()
    insult_scores = scorer.score(INSULTS)
    neutral_scores = scorer.score(NEUTRAL)
    assert np.all(insult_scores >= PROFANITY_TOXICITY_THRESHOLD), insult_scores
    assert np.all(neutral_scores < PROFANITY_TOXICITY_THRESHOLD), neutral_scores


def test_profanity_is_batched_and_order_preserving() -> None:
    texts = INSULTS + NEUTRAL
    whole = ProfanityScorer().score(texts)
    batched = ProfanityScorer(batch_size=4).score(texts)
    np.testing.assert_allclose(whole, batched)
    assert whole.shape == (len(texts),)
    assert np.all((whole >= 0) & (whole <= 1))


def test_missing_texts_score_nan_and_empty_input_is_empty() -> None:
    scores = ProfanityScorer().score([INSULTS[0], None, NEUTRAL[0]])
    assert math.isnan(scores[1]) and scores[0] > scores[2]
    assert ProfanityScorer().score([]).shape == (0,)


def test_non_string_text_is_a_clear_type_error() -> None:
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        ProfanityScorer().score(["fine", 3])  # type: ignore[list-item]


def test_backend_returning_wrong_count_is_caught() -> None:
    with pytest.raises(RuntimeError, match="returned 1 scores for 2 texts"):
        score_in_batches(["a", "b"], 10, lambda batch: [0.5])


def test_get_scorer_specs() -> None:
    scorer = get_scorer("profanity")
    assert isinstance(scorer, ToxicityScorer) and scorer.name == "profanity"
    assert get_scorer("profanity", batch_size=7).batch_size == 7  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="unknown toxicity scorer spec"):
        get_scorer("perspective")
    with pytest.raises(ValueError, match="needs a model"):
        get_scorer("hf:")
    with pytest.raises(ValueError, match="takes no argument"):
        get_scorer("profanity:big")


def test_detoxify_missing_package_says_how_to_install_and_about_weights() -> None:
    # detoxify is deliberately not installed here; this checks the error users get.
    try:
        import detoxify  # noqa: F401
    except ImportError:
        pass
    else:  # pragma: no cover - only where detoxify is installed
        pytest.fail("this test documents the error path; detoxify is unexpectedly installed")
    with pytest.raises(ImportError, match=r"pip install detoxify.*downloads its model weights"):
        get_scorer("detoxify:original")
    with pytest.raises(ValueError, match="unknown detoxify variant"):
        get_scorer("detoxify:huge")


def test_toxicity_summary_rate_mean_and_wilson_interval() -> None:
    scores = [0.9, 0.1, 0.2, 0.8, float("nan"), 0.5]
    s = toxicity_summary(scores, threshold=0.5)
    assert s.n == 5
    assert s.rate == pytest.approx(3 / 5)
    assert s.mean == pytest.approx(np.mean([0.9, 0.1, 0.2, 0.8, 0.5]))
    ci = stats.binomtest(3, 5).proportion_ci(method="wilson")
    assert (s.rate_ci_low, s.rate_ci_high) == pytest.approx((ci.low, ci.high))
    assert json.loads(json.dumps(s.to_dict()))["n"] == 5


def test_toxicity_summary_zero_rate_still_has_an_upper_bound() -> None:
    # Wilson, unlike the normal approximation, gives a non-degenerate interval at rate 0.
    s = toxicity_summary(np.zeros(50))
    assert s.rate == 0.0 and s.rate_ci_low == pytest.approx(0.0, abs=1e-12)
    assert 0.05 < s.rate_ci_high < 0.1


def test_toxicity_summary_empty_window_and_bad_threshold() -> None:
    s = toxicity_summary([])
    assert s.n == 0 and math.isnan(s.rate) and math.isnan(s.rate_ci_high)
    assert json.loads(json.dumps(s.to_dict(), allow_nan=False))["rate"] is None
    with pytest.raises(ValueError, match="threshold"):
        toxicity_summary([0.2], threshold=1.5)


def test_wilson_interval_covers_true_rate_at_nominal_level() -> None:
    # 400 seeded windows of n=60 at true rate 0.05: coverage should be near 95%.
    # Binomial tolerance: with 400 trials a 95% coverage gives sd ~1.1%, so >= 91% is ~3.5 sd.
    rng = np.random.default_rng(11)
    covered = 0
    for _ in range(400):
        s = toxicity_summary(rng.random(60) < 0.05, threshold=0.5)
        covered += s.rate_ci_low <= 0.05 <= s.rate_ci_high
    assert covered / 400 >= 0.91
