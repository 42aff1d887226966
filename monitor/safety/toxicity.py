"""Toxicity scorers and the window-level toxicity summary.

A scorer turns texts into probabilities in [0, 1] that a text is toxic. Backends:

- ``minilm-head:ensemble`` (default): an ensemble of small classifier heads over the MiniLM sentence vectors the
  pipeline already stores, plus the lexical model's score and a few cue features (``monitor.safety.embedding_head``).
  Trained on public labelled data with neutral identity mentions weighted in; fair to the 21 measured identity
  groups and given stored vectors it scores thousands of texts/s. It misses much plain rudeness, which the
  separate abuse signal (``profanity:masked``, below) reports. ``minilm-head`` is the older single head
  (flags more rudeness, but 55% of neutral statements about mentally ill people).
- ``minilm-combined``: the ensemble head for hate, OR the lexical model on the text with identity terms masked
  for explicit abuse (``monitor.safety.combined``): fair to the 21 measured groups and flags plain rudeness, but
  under the HateCheck AUC target, so not the default.
- ``profanity:masked``: the lexical model on the text with identity terms masked and quoted spans removed, at its
  own threshold: the abuse signal (``safety.profanity_rate``), reported next to toxicity, not OR-ed into it.
- ``profanity``: alt-profanity-check, a linear model over word n-grams. Very fast
  (~1e5 texts/s) and fully offline, but it keys on vocabulary: it misses threats and
  identity-based hate that avoids swear words, and over-scores friendly profanity and some
  identity terms (see docs/safety.md for measured figures).
- ``hf:<model id or path>``: any Hugging Face text-classification model (see ``hf_toxicity``).
- ``detoxify:<variant>``: the Detoxify models, when that package is installed.

``get_scorer("hf:...")`` is the way to switch to a stronger model without code changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

import numpy as np

from monitor.safety.batching import score_in_batches
from monitor.safety.intervals import wilson_interval
from monitor.safety.serialization import json_safe

# The default scorer's (minilm-head:ensemble) decision threshold: chosen on the validation split of its training
# data (maximal source-balanced Youden J under a neutral-identity false-flag budget; bootstrap interval in the
# head's metadata and docs/safety.md) by `python bench/train_toxicity_head.py --head ensemble`; a test checks it
# equals the shipped head's threshold.
DEFAULT_TOXICITY_THRESHOLD = 0.945

# Chosen for the profanity backend from its scores on realistic hateful vs neutral
# statements (monitor/safety/data/calibration.yaml; `python bench/safety_calibration.py`, figures
# in docs/safety.md). ROC AUC is 0.77 and balanced accuracy is flat (0.66-0.69) from 0.14 to 0.5,
# because many slur-free hateful statements score only 0.1-0.5. 0.3 sits at the top of that
# plateau (0.685 vs the best 0.689) while flagging half as many neutral statements as the Youden
# optimum (19% vs 37%; 10-13% of neutral sentences that mention an identity group). Other
# backends need their own threshold: see monitor.safety.calibration.
PROFANITY_TOXICITY_THRESHOLD = 0.3
DEFAULT_TOXICITY_SCORER = "minilm-head:ensemble"
# The abuse signal the safety stage reports next to toxicity (safety.profanity_rate.<field>): the lexical model on
# identity-masked text (monitor.safety.combined.MaskedProfanityScorer), at its own validation-chosen threshold.
PROFANITY_SCORER = "profanity:masked"


@runtime_checkable
class ToxicityScorer(Protocol):
    """Anything that scores texts for toxicity, batched."""

    @property
    def name(self) -> str:
        """Short identifier of the backend and model, e.g. ``profanity`` or ``hf:<model>``."""
        ...

    def score(self, texts: Sequence[str | None]) -> np.ndarray:
        """Probability in [0, 1] per text (NaN for a missing text), same order as ``texts``."""
        ...


@dataclass(frozen=True)
class ProfanityScorer:
    """alt-profanity-check (``profanity_check.predict_prob``); the offline default."""

    batch_size: int = 8192
    name: str = "profanity"

    def score(self, texts: Sequence[str | None]) -> np.ndarray:
        try:
            import profanity_check
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "the 'profanity' toxicity backend needs alt-profanity-check: pip install alt-profanity-check"
            ) from exc
        return score_in_batches(texts, self.batch_size, profanity_check.predict_prob)


DETOXIFY_VARIANTS = ("original", "unbiased", "multilingual", "original-small", "unbiased-small")


class DetoxifyScorer:
    """Detoxify (Unitary) models; uses their ``toxicity`` head as the score.

    The package is optional and imported lazily. Its weights are not on PyPI: Detoxify fetches
    a checkpoint and a tokenizer from the internet on first use, unless ``checkpoint`` points
    at a local file (tokenizer files must then already be in the Hugging Face cache).
    """

    def __init__(
        self,
        variant: str = "original",
        *,
        device: str | None = None,
        checkpoint: str | None = None,
        batch_size: int = 32,
    ) -> None:
        if variant not in DETOXIFY_VARIANTS:
            raise ValueError(
                f"unknown detoxify variant {variant!r}; choose one of {', '.join(DETOXIFY_VARIANTS)}"
            )
        try:
            from detoxify import Detoxify
        except ImportError as exc:
            raise ImportError(
                "the 'detoxify' toxicity backend needs the detoxify package: pip install detoxify. "
                "Note that detoxify downloads its model weights and tokenizer from the internet on "
                "first use; on an offline machine pass checkpoint=<local .ckpt> and pre-fill the "
                "Hugging Face cache, or use 'hf:<local model path>' instead."
            ) from exc
        import torch

        resolved_device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._model: Any = Detoxify(variant, checkpoint=checkpoint, device=resolved_device)
        self.name = f"detoxify:{variant}"
        self.batch_size = batch_size

    def _predict(self, batch: list[str]) -> np.ndarray:
        result = self._model.predict(batch)
        return np.asarray(result["toxicity"], dtype=np.float64)

    def score(self, texts: Sequence[str | None]) -> np.ndarray:
        return score_in_batches(texts, self.batch_size, self._predict)


def get_scorer(spec: str = DEFAULT_TOXICITY_SCORER, **options: Any) -> ToxicityScorer:
    """Build a scorer from a spec string: ``minilm-head[:<weights .npz> or packaged name]`` (the default is
    ``minilm-head:ensemble``), ``minilm-combined``, ``profanity[:masked]``, ``hf:<model id or path>``,
    ``detoxify[:<variant>]``.

    ``options`` go to the backend's constructor (e.g. ``batch_size``, ``toxic_labels`` for hf).
    """
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "minilm-combined":
        if arg:
            raise ValueError(f"the minilm-combined backend takes no argument, got {spec!r}")
        from monitor.safety.combined import CombinedScorer

        return CombinedScorer(**options)
    if kind == "minilm-head":
        from monitor.safety.embedding_head import EmbeddingHeadScorer

        return EmbeddingHeadScorer(arg or None, **options)
    if kind == "profanity":
        if arg.strip().lower() == "masked":
            from monitor.safety.combined import MaskedProfanityScorer

            return MaskedProfanityScorer(**options)
        if arg:
            raise ValueError(f"the profanity backend takes no argument but 'masked', got {spec!r}")
        return ProfanityScorer(**options)
    if kind == "hf":
        if not arg:
            raise ValueError("the hf backend needs a model: 'hf:<model id or local path>'")
        from monitor.safety.hf_toxicity import HFToxicityScorer

        return HFToxicityScorer(arg, **options)
    if kind == "detoxify":
        return DetoxifyScorer(arg or "original", **options)
    raise ValueError(
        f"unknown toxicity scorer spec {spec!r}; "
        "use 'minilm-head[:ensemble]', 'minilm-combined', 'profanity[:masked]', 'hf:<model id or path>' or "
        "'detoxify:<variant>'"
    )


def threshold_for(scorer: ToxicityScorer) -> float:
    """The calibrated threshold of a scorer: its own (``threshold`` attribute) if it has one, the profanity
    model's for ``profanity``, else 0.5 (calibrate other backends with ``monitor.safety.calibration``)."""
    own = getattr(scorer, "threshold", None)
    if isinstance(own, int | float):
        return float(own)
    return PROFANITY_TOXICITY_THRESHOLD if scorer.name == "profanity" else 0.5


# Backends with no threshold of their own (threshold_for's 0.5) whose construction loads a model: the threshold
# of such a spec is known without building one.
_MODEL_LOADING_BACKENDS = ("hf", "detoxify")


@lru_cache(maxsize=16)
def _spec_threshold(spec: str) -> float:
    if spec.partition(":")[0].strip().lower() in _MODEL_LOADING_BACKENDS:
        return 0.5
    return threshold_for(get_scorer(spec))


def active_threshold(spec: str, configured: float | None = None) -> float:
    """The threshold a text is counted toxic at for scorer ``spec``: ``configured`` (DRIFTLOOP_TOXICITY_THRESHOLD)
    when set, else the scorer's calibrated one, as the safety stage applies it. Cached per spec, so pages that
    link to "scored toxic" events can ask for it (minilm-head loads a few KB of head weights, once)."""
    return float(configured) if configured is not None else _spec_threshold(spec)


@dataclass(frozen=True)
class ToxicitySummary:
    """Toxicity over one window: mean score and the share of texts at or above ``threshold``."""

    n: int
    mean: float
    rate: float
    rate_ci_low: float
    rate_ci_high: float
    threshold: float

    def to_dict(self) -> dict[str, float | int | None]:
        """Plain dict for JSON; NaN (empty window) becomes None."""
        return dict(json_safe(asdict(self)))


def toxicity_summary(
    scores: Sequence[float] | np.ndarray,
    threshold: float = DEFAULT_TOXICITY_THRESHOLD,
    confidence: float = 0.95,
) -> ToxicitySummary:
    """Summarise per-text toxicity scores; NaN scores (missing texts) are left out of ``n``."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    x = np.asarray(scores, dtype=np.float64).reshape(-1)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return ToxicitySummary(0, math.nan, math.nan, math.nan, math.nan, threshold)
    toxic = int(np.count_nonzero(x >= threshold))
    low, high = wilson_interval(toxic, n, confidence)
    return ToxicitySummary(n, float(x.mean()), toxic / n, low, high, threshold)
