"""A toxicity scorer: the ensemble head for hate, OR the lexical model for explicit abuse on masked text.

Why two models: the ensemble head (``minilm-head:ensemble``) ranks identity-directed and implicit hate well and
is fair to neutral identity mentions, but at its calibrated threshold it misses plain rudeness ("Shut up and read
the damn manual" scores 0.21); the lexical model (alt-profanity-check) catches rudeness and explicit abuse but
reacts to identity words themselves ("I live with two gay people"). So the lexical model is asked only about
the text with every identity term masked (``monitor.safety.identity_terms``) and quoted spans removed: it still
sees "damn", "idiot", "shut up", and slurs, but no longer "gay", "muslim" or "mentally ill". A text is flagged
when either model says so at its own threshold.

One score for AUC, rates and thresholds: each model's probability is mapped piecewise-linearly so that its own
threshold lands on 0.5 (``rescale``), and the combined score is the larger of the two. It is monotone in each
model's score, and ``score >= 0.5`` is exactly "head >= its threshold or masked lexical >= its threshold".

Both thresholds ship in ``data/toxicity_combined.json``; the head's is the ensemble head's own (chosen on its
validation split), the lexical one is chosen on the same validation split by ``python
bench/calibrate_toxicity_combined.py`` (never on the held-out test splits, never on ToxiGen).

Selectable as ``minilm-combined``; not the default: it is fair to all 21 measured groups and flags plain
rudeness, but the lexical part also flags HateCheck's reclaimed slurs, counter-speech that names a slur without
quoting it and friendly profanity, which pulls its held-out HateCheck ROC AUC to 0.78 (target 0.85; docs/safety.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from importlib import resources
from typing import Any

import numpy as np

from monitor.safety.batching import score_in_batches
from monitor.safety.embedding_head import HEAD_EMBEDDING_KEY, EmbeddingHeadScorer, _lexical
from monitor.safety.identity_terms import mask_identity_terms

COMBINED_FILE = "toxicity_combined.json"
# A quoted span: counter-speech quotes the hate it answers ('Saying "X are scum" is vile'), and the lexical model
# would score the quoted abuse; the lexical part reads the text without quoted spans (the head sees them, with
# its quote cue). Kept because the validation split prefers it: Youden J 0.776 vs 0.756 with quotes kept.
QUOTED = re.compile(r"[\"“«][^\"“”«»]*[\"”»]")
# The combined score's decision threshold: each part is rescaled so that its own threshold maps here.
COMBINED_THRESHOLD = 0.5


def rescale(p: np.ndarray, threshold: float) -> np.ndarray:
    """Piecewise-linear map of [0, 1] onto [0, 1] sending ``threshold`` to 0.5 (order kept within each side)."""
    p = np.asarray(p, dtype=np.float64)
    below = 0.5 * p / threshold
    above = 0.5 + 0.5 * (p - threshold) / (1.0 - threshold)
    return np.where(p < threshold, below, above)


def lexical_input(text: str) -> str:
    """What the lexical part reads: ``text`` with identity terms masked and quoted spans removed."""
    return QUOTED.sub(" ", mask_identity_terms(text))


def masked_lexical(texts: Sequence[str]) -> np.ndarray:
    """The lexical model's probability on each text with its identity terms masked and quoted spans removed."""
    return _lexical([lexical_input(t) for t in texts])


def load_calibration() -> dict[str, Any]:
    """The shipped thresholds and where they came from (``data/toxicity_combined.json``)."""
    text = resources.files("monitor.safety.data").joinpath(COMBINED_FILE).read_text(encoding="utf-8")
    meta: dict[str, Any] = json.loads(text)
    return meta


class CombinedScorer:
    """max(rescaled ensemble head on the text, rescaled lexical model on the identity-masked text)."""

    name = "minilm-combined"
    embedding_key = HEAD_EMBEDDING_KEY
    threshold = COMBINED_THRESHOLD

    def __init__(self, *, head_threshold: float | None = None, lexical_threshold: float | None = None,
                 batch_size: int = 4096, device: str = "auto") -> None:
        self.calibration = load_calibration()
        self.head = EmbeddingHeadScorer(self.calibration["head"], batch_size=batch_size, device=device)
        self.head_threshold = float(self.calibration["head_threshold"] if head_threshold is None else head_threshold)
        self.lexical_threshold = float(self.calibration["lexical_threshold"] if lexical_threshold is None
                                       else lexical_threshold)
        for t in (self.head_threshold, self.lexical_threshold):
            if not 0.0 < t < 1.0:
                raise ValueError(f"combined scorer thresholds must be in (0, 1), got {t}")
        self.batch_size = batch_size

    def combine(self, head: np.ndarray, lexical_masked: np.ndarray) -> np.ndarray:
        """The combined score from the two parts' probabilities."""
        return np.maximum(rescale(head, self.head_threshold), rescale(lexical_masked, self.lexical_threshold))

    def score_embedded(self, texts: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        """Scores of ``texts`` given their MiniLM vectors (one row per text, same order)."""
        head = self.head.score_embedded(texts, vectors)
        if not texts:
            return head
        return self.combine(head, masked_lexical(texts))

    def _predict(self, batch: list[str]) -> np.ndarray:
        return self.combine(self.head.score(batch), masked_lexical(batch))

    def score(self, texts: Sequence[str | None]) -> np.ndarray:
        return score_in_batches(texts, self.batch_size, self._predict)


class MaskedProfanityScorer:
    """The abuse signal: the lexical model (alt-profanity-check) on the text with identity terms masked and
    quoted spans removed, at the lexical threshold chosen on the validation split (``toxicity_combined.json``).

    It flags explicit rudeness and insults ("Shut up and read the damn manual") that the default toxicity head
    leaves to it, without the raw lexical model's reaction to identity words (it flags 90% of HateCheck's neutral
    statements about gay people; masked, none). The safety stage reports it as ``safety.profanity_rate.<field>``,
    next to the toxicity rate and never OR-ed into it. Selectable as ``profanity:masked``.
    """

    name = "profanity:masked"

    def __init__(self, *, threshold: float | None = None, batch_size: int = 8192) -> None:
        self.calibration = load_calibration()
        self.threshold = float(self.calibration["lexical_threshold"] if threshold is None else threshold)
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"the masked lexical threshold must be in (0, 1), got {self.threshold}")
        self.batch_size = batch_size

    def score(self, texts: Sequence[str | None]) -> np.ndarray:
        return score_in_batches(texts, self.batch_size, masked_lexical)
