from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monitor.safety.hf_toxicity import HFToxicityScorer, resolve_toxic_labels, toxic_probability
from monitor.safety.toxicity import get_scorer

# Held-out phrasings: the words were seen in training, these sentences were not.
TOXIC_HELD_OUT = ["shut up, you pathetic pig", "you disgusting moron", "what an idiot"]
NEUTRAL_HELD_OUT = ["the report is lovely", "see you at lunch tomorrow", "thanks for the meeting"]


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({0: "non-toxic", 1: "toxic"}, (1,)),
        ({0: "NOT_OFFENSIVE", 1: "OFFENSIVE"}, (1,)),
        ({0: "normal", 1: "offensive", 2: "hate speech"}, (1, 2)),
        ({0: "LABEL_0", 1: "LABEL_1"}, (1,)),
        (
            dict(enumerate(["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"])),
            tuple(range(6)),
        ),
        ({0: "neutral", 1: "Insult", 2: "no-hate"}, (1,)),
    ],
)
def test_auto_label_mapping(labels: dict[int, str], expected: tuple[int, ...]) -> None:
    assert resolve_toxic_labels(labels) == expected


def test_explicit_label_mapping_by_name_or_index() -> None:
    labels = {0: "POSITIVE", 1: "NEGATIVE"}
    assert resolve_toxic_labels(labels, ["negative"]) == (1,)
    assert resolve_toxic_labels(labels, [0]) == (0,)
    with pytest.raises(ValueError, match="not a label of this model"):
        resolve_toxic_labels(labels, ["toxic"])
    with pytest.raises(ValueError, match="cannot tell which outputs"):
        resolve_toxic_labels(labels)


def test_softmax_sums_toxic_classes_and_sigmoid_takes_the_max() -> None:
    logits = np.array([[0.0, 0.0, 0.0], [10.0, -10.0, -10.0]])
    single = toxic_probability(logits, (1, 2), multi_label=False)
    np.testing.assert_allclose(single, [2 / 3, 2 * np.exp(-20) / (1 + 2 * np.exp(-20))], rtol=1e-9)
    multi = toxic_probability(np.array([[-2.0, 3.0, 0.0]]), (1, 2), multi_label=True)
    np.testing.assert_allclose(multi, [1 / (1 + np.exp(-3.0))])
    one_output = toxic_probability(np.array([[0.0], [2.0]]), (0,), multi_label=False)
    np.testing.assert_allclose(one_output, [0.5, 1 / (1 + np.exp(-2.0))])


def test_tiny_binary_model_separates_toxic_from_neutral(tiny_binary_model: Path) -> None:
    scorer = get_scorer(f"hf:{tiny_binary_model}")
    assert isinstance(scorer, HFToxicityScorer)
    assert scorer.toxic_idx == (1,) and not scorer.multi_label and scorer.device in ("cpu", "cuda")
    toxic = scorer.score(TOXIC_HELD_OUT)
    neutral = scorer.score(NEUTRAL_HELD_OUT)
    assert np.all(toxic > 0.5), toxic
    assert np.all(neutral < 0.5), neutral


def test_batching_length_sorting_and_truncation(tiny_binary_model: Path) -> None:
    texts = [*TOXIC_HELD_OUT, None, "idiot " * 400, *NEUTRAL_HELD_OUT, ""]
    big = HFToxicityScorer(str(tiny_binary_model), batch_size=64)
    small = HFToxicityScorer(str(tiny_binary_model), batch_size=2)
    assert small.max_length == 64  # capped by the model's 64 positions, not the requested 512
    a, b = big.score(texts), small.score(texts)
    assert np.isnan(a[3]) and np.isnan(b[3])
    present = ~np.isnan(a)
    # Same scores whatever the batch size: padding must not leak into the prediction.
    np.testing.assert_allclose(a[present], b[present], atol=1e-5)
    assert np.all((a[present] >= 0) & (a[present] <= 1))
    assert a[4] > 0.5  # the 400-word insult was truncated, not rejected


def test_tiny_multilabel_model_uses_sigmoid_over_toxic_labels(tiny_multilabel_model: Path) -> None:
    scorer = HFToxicityScorer(str(tiny_multilabel_model))
    assert scorer.multi_label and scorer.toxic_idx == (1, 2)
    toxic = scorer.score(TOXIC_HELD_OUT)
    neutral = scorer.score(NEUTRAL_HELD_OUT)
    assert np.all(toxic > 0.5) and np.all(neutral < 0.5), (toxic, neutral)
    # Forcing softmax changes the normalisation, and a single chosen label changes the value.
    softmax = HFToxicityScorer(str(tiny_multilabel_model), multi_label=False).score(TOXIC_HELD_OUT)
    only_insult = HFToxicityScorer(str(tiny_multilabel_model), toxic_labels=["insult"]).score(TOXIC_HELD_OUT)
    assert not np.allclose(softmax, toxic)
    assert np.all(only_insult <= toxic + 1e-12)


def test_missing_model_gives_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="could not load text-classification model"):
        HFToxicityScorer(str(tmp_path / "nope"))
