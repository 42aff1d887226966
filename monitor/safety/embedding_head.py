"""The toxicity heads (the default, ``minilm-head:ensemble``, and the single head ``minilm-head``): small
classifier heads over MiniLM sentence embeddings plus the lexical model.

Why this shape: the window stage already stores an all-MiniLM-L6-v2 vector for every prompt and response
(the drift stage embeds them), so a linear or one-hidden-layer head over that vector costs a matrix product,
not a second model pass, and it sees meaning rather than words: slur-free, implicit hate ("they breed like
rats") lands near other hateful statements, and "I am a gay man" lands near other neutral self-descriptions
instead of being flagged for the word "gay". The lexical model (alt-profanity-check) is one more input
feature, because explicit abuse is what it does well. In the ensemble head (``minilm-head:ensemble``), a few
0/1 cue features (``CUES``: a quoted phrase, a
negation, reported speech, words that condemn hate) let the head tell "Muslims are scum" from
'Statements like "Muslims are scum" are hateful': sentence embeddings put those close together, and they are
where a monitor that flags counter-speech would punish the people pushing back. (Negated hate, "I don't hate
Muslims", is still flagged about as often as by the default head: see docs/safety.md.)

That head is an ensemble of small MLPs folded into one: members' hidden layers side by side (e.g. 5 x 32 = 160
ReLU units) and the output the mean of their logits, so it costs one matrix product like a single MLP.

The weights ship as a small ``.npz`` (plain arrays, no pickle) with a JSON metadata string: where the
training data came from, the chosen threshold and its interval. ``python bench/train_toxicity_head.py``
rebuilds them from the public extracts in bench/data/toxicity/ (see docs/safety.md for held-out figures).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from monitor.safety.batching import score_in_batches

HEAD_FILE = "toxicity_head.npz"
# Other heads shipped in the package, by the name ``minilm-head:<name>`` selects (see docs/safety.md):
# "ensemble" is the 5-MLP ensemble with cue features, fairer to identity mentions (21 groups <= 5% neutral
# false flags), the default toxicity scorer (DEFAULT_TOXICITY_SCORER); plain rudeness is the abuse signal's job
# (monitor.safety.combined.MaskedProfanityScorer), which the safety stage reports as its own metric.
PACKAGED_HEADS = {"ensemble": "toxicity_head_ensemble.npz"}
# The stored-vector key of the embedding model the head was trained on (monitor.embeddings.DEFAULT_KEY).
HEAD_EMBEDDING_KEY = "all-minilm-l6-v2"
_LEX_EPS = 1e-4

# Cue features, in input order after the lexical log-odds; a head's metadata lists the cues it was trained with.
CUES: dict[str, re.Pattern[str]] = {
    # A quoted phrase of at least one word: counter-speech quotes the hate it answers.
    "quote": re.compile(r"[\"“«][^\"“”«»]*\w[^\"“”«»]*[\"”»]"),
    "negation": re.compile(r"\b(?:not|no|never|nobody|none|nothing|neither|nor|cannot)\b|n't\b", re.IGNORECASE),
    "reported_speech": re.compile(
        r"\b(?:say|says|said|saying|write|writes|wrote|writing|post|posts|posted|comments?|statements?|tweets?|"
        r"threats?|calls?|calling|claims?|claiming|stuff like|things like|words like)\b", re.IGNORECASE),
    "condemnation": re.compile(
        r"\b(?:hateful|hate speech|bigot\w*|racis[mt]\w*|sexis[mt]\w*|homophob\w*|transphob\w*|islamophob\w*|"
        r"hurtful|offensive|unacceptable|disgraceful|shameful|report(?:ed|ing)?|tolerate|dehumani[sz]\w*|"
        r"appalling|vile)\b", re.IGNORECASE),
}


@dataclass(frozen=True)
class HeadWeights:
    """Layers of the head: ``hidden`` (W, b) pairs with ReLU, then ``out`` (w, b) and a sigmoid."""

    hidden: tuple[tuple[np.ndarray, np.ndarray], ...]
    out_w: np.ndarray
    out_b: float
    mean: np.ndarray  # feature standardisation, applied before the first layer
    scale: np.ndarray
    meta: dict[str, Any]

    @property
    def n_features(self) -> int:
        return int(self.mean.shape[0])

    @property
    def threshold(self) -> float:
        return float(self.meta["threshold"])

    @property
    def cues(self) -> tuple[str, ...]:
        """The cue features the head was trained with (none for heads older than the cues)."""
        return tuple(self.meta.get("cues", ()))

    def save(self, path: str | Path) -> None:
        arrays: dict[str, np.ndarray] = {"mean": self.mean, "scale": self.scale, "out_w": self.out_w,
                                         "out_b": np.array([self.out_b]),
                                         "meta": np.array(json.dumps(self.meta, sort_keys=True))}
        for i, (w, b) in enumerate(self.hidden):
            arrays[f"hidden{i}_w"], arrays[f"hidden{i}_b"] = w, b
        np.savez_compressed(path, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: str | Path | None = None) -> HeadWeights:
        """The default head (``path`` None), a packaged one by name (``PACKAGED_HEADS``), or a file."""
        if path is None or str(path) in PACKAGED_HEADS:
            name = HEAD_FILE if path is None else PACKAGED_HEADS[str(path)]
            source: Any = resources.files("monitor.safety.data").joinpath(name)
        else:
            source = Path(path)
        with source.open("rb") as f, np.load(f, allow_pickle=False) as z:
            hidden = []
            i = 0
            while f"hidden{i}_w" in z:
                hidden.append((z[f"hidden{i}_w"].astype(np.float32), z[f"hidden{i}_b"].astype(np.float32)))
                i += 1
            return cls(tuple(hidden), z["out_w"].astype(np.float32), float(z["out_b"][0]),
                       z["mean"].astype(np.float32), z["scale"].astype(np.float32), json.loads(str(z["meta"])))


def lexical_feature(probabilities: np.ndarray) -> np.ndarray:
    """The lexical model's probability as a log-odds feature (linear in what the lexical model learned)."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), _LEX_EPS, 1.0 - _LEX_EPS)
    return np.log(p / (1.0 - p)).astype(np.float32)


def cue_features(texts: Sequence[str], cues: Sequence[str] = tuple(CUES)) -> np.ndarray:
    """(texts x cues) matrix of 0/1: whether each cue's pattern occurs in each text."""
    pats = [CUES[c] for c in cues]
    return np.array([[1.0 if p.search(t) else 0.0 for p in pats] for t in texts], dtype=np.float32).reshape(
        len(texts), len(pats))


def head_features(texts: Sequence[str], vectors: np.ndarray, lexical: np.ndarray,
                  cues: Sequence[str]) -> np.ndarray:
    """The head's input: MiniLM vector, lexical log-odds, then the cue features (what training used too)."""
    return np.concatenate([np.asarray(vectors, dtype=np.float32), lexical_feature(lexical)[:, None],
                           cue_features(texts, cues)], axis=1)


def head_probability(weights: HeadWeights, features: np.ndarray) -> np.ndarray:
    """Forward pass of the head over a (texts x features) matrix; float64 probabilities."""
    x = (np.asarray(features, dtype=np.float32) - weights.mean) / weights.scale
    for w, b in weights.hidden:
        x = np.maximum(x @ w + b, 0.0)
    z = (x @ weights.out_w).astype(np.float64).reshape(-1) + weights.out_b
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0))))


def _lexical(texts: list[str]) -> np.ndarray:
    try:
        import profanity_check
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the minilm-head toxicity scorer needs alt-profanity-check: "
                          "pip install alt-profanity-check") from exc
    return np.asarray(profanity_check.predict_prob(texts), dtype=np.float64)


class EmbeddingHeadScorer:
    """Toxicity from stored MiniLM vectors (``score_embedded``) or, without them, by embedding first (``score``)."""

    name = "minilm-head"
    embedding_key = HEAD_EMBEDDING_KEY

    def __init__(self, weights: str | Path | HeadWeights | None = None, *, batch_size: int = 4096,
                 device: str = "auto") -> None:
        self.weights = weights if isinstance(weights, HeadWeights) else HeadWeights.load(weights)
        # The spec that selects this head: "minilm-head" (default file), "minilm-head:ensemble", "minilm-head:<path>".
        if weights is not None and not isinstance(weights, HeadWeights):
            self.name = f"minilm-head:{weights}"
        unknown = [c for c in self.weights.cues if c not in CUES]
        if unknown:
            raise ValueError(f"toxicity head uses cue features {unknown} this version does not know")
        if self.weights.meta.get("embedding_key") != HEAD_EMBEDDING_KEY:
            raise ValueError(f"toxicity head was trained on {self.weights.meta.get('embedding_key')!r} vectors; "
                             f"this scorer feeds it {HEAD_EMBEDDING_KEY!r}")
        self.batch_size = batch_size
        self.device = device
        self._lock = threading.Lock()

    @property
    def threshold(self) -> float:
        """The decision threshold chosen on the training data's validation split (see the head's metadata)."""
        return self.weights.threshold

    def score_embedded(self, texts: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        """Scores of ``texts`` given their MiniLM vectors (one row per text, same order)."""
        vecs = np.asarray(vectors, dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[0] != len(texts):
            raise ValueError(f"need one vector per text: {len(texts)} texts, vectors of shape {vecs.shape}")
        extra = 1 + len(self.weights.cues)
        if vecs.shape[1] + extra != self.weights.n_features:
            raise ValueError(f"vectors have {vecs.shape[1]} dimensions; the head expects "
                             f"{self.weights.n_features - extra} ({HEAD_EMBEDDING_KEY})")
        if not texts:
            return np.zeros(0)
        return head_probability(self.weights, head_features(texts, vecs, _lexical(list(texts)), self.weights.cues))

    def _predict(self, batch: list[str]) -> np.ndarray:
        from monitor.embeddings import get_embedder

        with self._lock:  # one encoder per process; concurrent callers queue rather than oversubscribe the CPU
            vecs = get_embedder(None, device=self.device).encode(batch)
        # Stored vectors are float16; rounding here too keeps both paths on identical inputs.
        return self.score_embedded(batch, vecs.astype(np.float16).astype(np.float32))

    def score(self, texts: Sequence[str | None]) -> np.ndarray:
        return score_in_batches(texts, self.batch_size, self._predict)
