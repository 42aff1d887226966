"""Toxicity from any Hugging Face text-classification model (id or local path).

Models disagree on how they name and normalise their outputs: single-label models
(``non-toxic``/``toxic`` or ``LABEL_0``/``LABEL_1``) want a softmax, multi-label ones
(``toxic``, ``insult``, ``threat``, ...) want a sigmoid per label. ``resolve_toxic_labels`` picks
which outputs mean "toxic" and ``HFToxicityScorer`` turns them into one probability per text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from monitor.safety.batching import score_in_batches

# Label names that mean "harmful" in common toxicity / hate / offensive-language models.
TOXIC_LABEL_PATTERN = re.compile(
    r"toxic|offensive|hate|insult|obscene|threat|abus|profan|attack|harass", re.I
)
# ...unless negated ("non-toxic", "not_offensive", "NOT-HATE") or explicitly benign.
BENIGN_LABEL_PATTERN = re.compile(r"^\s*(non|not|no)(\b|[\s_-])|neutral|normal|clean|safe|benign", re.I)


def resolve_toxic_labels(
    id2label: Mapping[int, str], toxic_labels: Sequence[str | int] | None = None
) -> tuple[int, ...]:
    """Indices of the outputs that count as toxic.

    ``toxic_labels`` may name labels (case-insensitive) or give indices. Without it, labels
    matching ``TOXIC_LABEL_PATTERN`` and not ``BENIGN_LABEL_PATTERN`` are used; a plain binary
    ``LABEL_0``/``LABEL_1`` model maps to ``LABEL_1``.
    """
    labels = {int(i): str(name) for i, name in id2label.items()}
    if toxic_labels is not None:
        by_name = {name.lower(): i for i, name in labels.items()}
        chosen: list[int] = []
        for item in toxic_labels:
            if isinstance(item, int):
                if item not in labels:
                    raise ValueError(
                        f"toxic label index {item} is not an output of this model; labels: {labels}"
                    )
                chosen.append(item)
            elif item.lower() in by_name:
                chosen.append(by_name[item.lower()])
            else:
                raise ValueError(
                    f"toxic label {item!r} is not a label of this model; labels: {sorted(labels.values())}"
                )
        if not chosen:
            raise ValueError("toxic_labels is empty; name at least one label")
        return tuple(sorted(set(chosen)))
    auto = [
        i
        for i, name in labels.items()
        if TOXIC_LABEL_PATTERN.search(name) and not BENIGN_LABEL_PATTERN.search(name)
    ]
    if auto:
        return tuple(sorted(auto))
    if sorted(labels.values()) == ["LABEL_0", "LABEL_1"]:
        return (next(i for i, name in labels.items() if name == "LABEL_1"),)
    raise ValueError(
        f"cannot tell which outputs of this model mean 'toxic' (labels: {sorted(labels.values())}); "
        "pass toxic_labels=[...] naming them"
    )


def toxic_probability(logits: np.ndarray, toxic_idx: Sequence[int], multi_label: bool) -> np.ndarray:
    """One toxicity probability per row of ``logits`` (shape ``(n, num_labels)``).

    Single-label: softmax, then the summed probability of the toxic classes. Multi-label (or a
    one-output model): sigmoid per label, then the largest toxic one, i.e. "is any kind of
    toxicity present".
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"logits must be 2-D (texts x labels), got shape {z.shape}")
    idx = list(toxic_idx)
    if multi_label or z.shape[1] == 1:
        probs = 1.0 / (1.0 + np.exp(-z[:, idx]))
        return np.asarray(probs.max(axis=1))
    z = z - z.max(axis=1, keepdims=True)  # stable softmax
    e = np.exp(z)
    # Clipped because summing several softmax terms can round to 1 + 1e-16.
    return np.clip(e[:, idx].sum(axis=1) / e.sum(axis=1), 0.0, 1.0)


class HFToxicityScorer:
    """A transformers sequence classifier as a toxicity scorer.

    Loads with ``AutoTokenizer`` + ``AutoModelForSequenceClassification`` in float32, on CUDA when
    available. Texts are scored in batches, sorted by length so padding stays small, and
    truncated to the model's maximum length.
    """

    def __init__(
        self,
        model: str,
        *,
        toxic_labels: Sequence[str | int] | None = None,
        multi_label: bool | None = None,
        batch_size: int = 32,
        max_length: int = 512,
        device: str | None = None,
        cache_dir: str | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self._tokenizer: Any = AutoTokenizer.from_pretrained(model, cache_dir=cache_dir)
            self._model: Any = AutoModelForSequenceClassification.from_pretrained(
                model, cache_dir=cache_dir, dtype=torch.float32
            )
        except OSError as exc:
            raise OSError(
                f"could not load text-classification model {model!r}: {exc}. Give a local directory "
                "with config, tokenizer and weights, or a model id when a model hub is reachable."
            ) from exc
        self._model.to(self.device).eval()
        config = self._model.config
        self.labels: dict[int, str] = {int(i): str(n) for i, n in config.id2label.items()}
        self.toxic_idx = resolve_toxic_labels(self.labels, toxic_labels)
        self.multi_label = (
            multi_label if multi_label is not None else config.problem_type == "multi_label_classification"
        )
        self.max_length = self._effective_max_length(max_length)
        self.batch_size = batch_size
        self.name = f"hf:{model}"

    def _effective_max_length(self, requested: int) -> int:
        limits = [requested]
        tok_max = getattr(self._tokenizer, "model_max_length", None)
        if isinstance(tok_max, int) and tok_max < 1_000_000:  # unset tokenizers report ~1e30
            limits.append(tok_max)
        pos_max = getattr(self._model.config, "max_position_embeddings", None)
        if isinstance(pos_max, int) and pos_max > 0:
            limits.append(pos_max)
        return min(limits)

    def _predict(self, batch: list[str]) -> np.ndarray:
        import torch

        # Length-sorted batches pad less; the order is restored before returning.
        order = np.argsort([len(t) for t in batch], kind="stable")
        result = np.empty(len(batch), dtype=np.float64)
        for start in range(0, len(batch), self.batch_size):
            idx = order[start : start + self.batch_size]
            enc = self._tokenizer(
                [batch[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            with torch.inference_mode():
                logits = self._model(**enc).logits.float().cpu().numpy()
            result[idx] = toxic_probability(logits, self.toxic_idx, self.multi_label)
        return result

    def score(self, texts: Sequence[str | None]) -> np.ndarray:
        # One outer chunk per 64 model batches keeps length-sorting effective without
        # holding every tokenized text in memory at once.
        return score_in_batches(texts, self.batch_size * 64, self._predict)
