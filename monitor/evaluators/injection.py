"""Prompt-injection / jailbreak attempts in prompts: a small head over the stored MiniLM prompt vector plus cues.

Why this shape (the toxicity head's, monitor/safety/embedding_head.py): the drift stage already stores an
all-MiniLM-L6-v2 vector of every prompt, so a one-hidden-layer head over it costs a matrix product. MiniLM reads
only the first 256 word pieces, and a jailbreak often hides its ask after a long role-play preamble, so a few
0/1 cue features computed over the whole text (``CUES``: "ignore the previous instructions", "developer mode",
"you are no longer bound by", a request for the system prompt ...) and the log length are inputs too.

What counts as an attack: trying to override, hijack or leak the application's instructions, or to jailbreak
the model's rules. A plain harmful request ("how do I pick a lock") is *not* one; the training data holds such
requests as negatives (bench/data/evaluators/SOURCE.md), so this evaluator does not double as a harm detector.

The weights ship as ``data/injection_head.npz`` (plain arrays and JSON metadata, the toxicity head's format);
``python bench/train_injection_head.py`` rebuilds them from the train split of the public extract, and the
metadata records the threshold chosen on a validation split. Held-out figures: docs/evaluators.md.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from monitor.evaluators.base import EvalItem, EvalResult
from monitor.safety.embedding_head import HEAD_EMBEDDING_KEY, HeadWeights, head_probability

HEAD_PATH = Path(__file__).resolve().parent / "data" / "injection_head.npz"

CUES: dict[str, re.Pattern[str]] = {
    "ignore_instructions": re.compile(
        r"\b(?:ignore|disregard|forget|override|bypass|skip)\b[^.\n]{0,40}\b(?:instructions?|prompts?|rules|"
        r"directions|guidelines|above|previous|prior|everything)\b", re.IGNORECASE),
    "leak_instructions": re.compile(
        r"\b(?:system prompt|initial (?:prompt|instructions)|(?:your|the) (?:instructions|prompt) (?:above|"
        r"you were given)|previous instructions|starting instructions|print the (?:above|previous))\b",
        re.IGNORECASE),
    "persona_switch": re.compile(
        r"\b(?:you are (?:now|going to)|from now on|act as|pretend (?:to be|you are)|role-?play|stay in "
        r"character|simulate|hypothetical)\b", re.IGNORECASE),
    "jailbreak_terms": re.compile(
        r"\b(?:DAN|jailbr\w*|developer mode|dev mode|do anything now|unfiltered|uncensored|no (?:restrictions|"
        r"limits|filters?)|without (?:any )?(?:restrictions|limitations|censorship|filters?))\b", re.IGNORECASE),
    "rules_off": re.compile(
        r"\b(?:not bound by|free(?:d)? from|break(?:s|ing)? (?:free|the rules)|no longer (?:have|bound|need)|"
        r"content polic\w*|ethical (?:guidelines|constraints|restrictions)|openai)\b", re.IGNORECASE),
    "shouting_order": re.compile(r"\b(?:IGNORE|STOP|JUST PRINT|NEVERMIND|NEW INSTRUCTIONS?)\b"),
    "two_voices": re.compile(r"\[(?:🔒|🔓|CLASSIC|JAILBREAK|GPT|DAN)[^\]]{0,20}\]|\b(?:GPT|DAN|AIM|STAN):",
                             re.IGNORECASE),
}
_LENGTH_SCALE = 1.0 / math.log(10_000.0)  # log(1 + characters), about 0..1 over the lengths prompts have


def cue_features(texts: Sequence[str]) -> np.ndarray:
    """(texts x (cues + 1)) matrix: 0/1 per cue found anywhere in the text, then the scaled log length."""
    out = np.zeros((len(texts), len(CUES) + 1), dtype=np.float32)
    for i, t in enumerate(texts):
        for j, pat in enumerate(CUES.values()):
            out[i, j] = 1.0 if pat.search(t) else 0.0
        out[i, -1] = math.log1p(len(t)) * _LENGTH_SCALE
    return out


def injection_features(texts: Sequence[str], vectors: np.ndarray) -> np.ndarray:
    """The head's input: MiniLM vector, then the cue features (what training used too)."""
    return np.concatenate([np.asarray(vectors, dtype=np.float32), cue_features(texts)], axis=1)


def _explain(text: str, p: float, threshold: float) -> str:
    found = [name for name, pat in CUES.items() if pat.search(text)]
    verdict = "looks like an injection/jailbreak attempt" if p >= threshold else "no injection attempt seen"
    cues = f"; cues: {', '.join(found)}" if found else ""
    return f"{verdict} (p={p:.2f}, threshold {threshold:.2f}){cues}"


class InjectionParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threshold: float | None = Field(None, gt=0.0, lt=1.0, description="Default: the head's calibrated threshold.")
    min_coverage: float = Field(0.5, gt=0.0, le=1.0, description="The default coverage rule pages below this.")


class InjectionEvaluator:
    """Scores prompts; value = probability of an injection/jailbreak attempt, label = value >= threshold."""

    fields = frozenset({"prompt", "prompt_vec"})
    good_when_high: bool | None = False  # an attack prompt is not a sign of a good answer

    def __init__(self, name: str = "injection", *, weights: str | Path | HeadWeights | None = None,
                 threshold: float | None = None, device: str = "auto", use_stored_vectors: bool = True) -> None:
        self.weights = weights if isinstance(weights, HeadWeights) else HeadWeights.load(weights or HEAD_PATH)
        if self.weights.meta.get("embedding_key") != HEAD_EMBEDDING_KEY:
            raise ValueError(f"injection head was trained on {self.weights.meta.get('embedding_key')!r} vectors")
        if tuple(self.weights.meta.get("cues", ())) != tuple(CUES):
            raise ValueError("injection head was trained with other cue features than this version computes")
        self.name = name
        self.threshold = float(self.weights.threshold if threshold is None else threshold)
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("threshold must be in (0, 1)")
        self.version = f"head-{self.weights.meta.get('version', '1')}-t{self.threshold:.3f}"
        self.params = InjectionParams(threshold=self.threshold)  # resolved: what the stage reports as threshold
        # Stored vectors of another embedding model (DRIFTLOOP_EMBEDDING_MODEL) would feed the head the wrong
        # space, even at the same dimension: then only the text is asked for and the head embeds it itself.
        if not use_stored_vectors:
            self.fields = frozenset({"prompt"})
        self.device = device
        self._lock = threading.Lock()

    def score(self, texts: Sequence[str], vectors: np.ndarray | None = None) -> np.ndarray:
        """Probabilities for ``texts``; ``vectors`` are their MiniLM vectors (embedded here when None)."""
        if not texts:
            return np.zeros(0)
        if vectors is None:
            from monitor.embeddings import get_embedder

            with self._lock:  # one encoder per process; concurrent callers queue instead of oversubscribing
                vectors = get_embedder(None, device=self.device).encode(list(texts))
            # Stored vectors are float16; rounding here too keeps both paths on identical inputs.
            vectors = np.asarray(vectors).astype(np.float16).astype(np.float32)
        vecs = np.asarray(vectors, dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[0] != len(texts) or vecs.shape[1] + len(CUES) + 1 != self.weights.n_features:
            raise ValueError(f"need one {HEAD_EMBEDDING_KEY} vector per text; got shape {vecs.shape}")
        return head_probability(self.weights, injection_features(texts, vecs))

    def evaluate(self, items: Sequence[EvalItem]) -> list[EvalResult]:
        if not items:
            return []
        texts = [it.prompt or "" for it in items]
        dim = self.weights.n_features - len(CUES) - 1
        have = [it.prompt_vec is not None and np.asarray(it.prompt_vec).shape == (dim,) for it in items]
        probs = np.empty(len(items))
        stored = [i for i, ok in enumerate(have) if ok]
        missing = [i for i, ok in enumerate(have) if not ok]
        if stored:
            vecs = np.stack([np.asarray(items[i].prompt_vec, dtype=np.float32) for i in stored])
            probs[stored] = self.score([texts[i] for i in stored], vecs)
        if missing:  # no stored vector (the drift stage has not run, or another embedding model): embed here
            probs[missing] = self.score([texts[i] for i in missing])
        return [EvalResult(float(p), bool(p >= self.threshold), _explain(t, float(p), self.threshold))
                for t, p in zip(texts, probs, strict=True)]
