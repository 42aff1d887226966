from __future__ import annotations

import numpy as np
import pytest

from monitor.safety.calibration import calibrate_threshold, load_calibration_set, youden_threshold
from monitor.safety.toxicity import PROFANITY_TOXICITY_THRESHOLD, ProfanityScorer


def test_shipped_calibration_set_is_balanced_enough_and_labelled() -> None:
    examples = load_calibration_set()
    labels = np.array([e.label for e in examples])
    assert labels.sum() >= 150 and (labels == 0).sum() >= 150
    cats = {e.category for e in examples}
    assert {"threat", "dehumanisation", "counter_speech", "hateful_free_text", "neutral_free_text"} <= cats
    assert all("{group}" not in e.text for e in examples)


def test_youden_threshold_separates_perfectly_separable_scores() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8])
    labels = np.array([0, 0, 0, 1, 1])
    assert youden_threshold(scores, labels) == pytest.approx(0.5)


def test_default_threshold_is_near_the_profanity_optimum() -> None:
    # The default was chosen on this set; this guards the documented figures against drift
    # of the profanity model or of the set: balanced accuracy at the default must stay within
    # 0.03 of the best threshold's, and the ranking must stay clearly better than chance.
    best = calibrate_threshold(ProfanityScorer())
    at_default = calibrate_threshold(ProfanityScorer(), threshold=PROFANITY_TOXICITY_THRESHOLD)
    assert best.roc_auc > 0.7
    assert at_default.balanced_accuracy >= best.balanced_accuracy - 0.03
    rates = {c.category: c.flagged_rate for c in at_default.categories}
    assert rates["profane_hate"] == 1.0 and rates["neutral_general"] == 0.0
    # The documented blind spot: most dehumanising statements without swear words are missed.
    assert rates["dehumanisation"] < 0.5


def test_calibration_needs_both_labels() -> None:
    examples = [e for e in load_calibration_set() if e.label == 1]
    with pytest.raises(ValueError, match="both hateful"):
        calibrate_threshold(ProfanityScorer(), examples)
