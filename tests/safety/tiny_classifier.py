"""Builds a tiny BERT text classifier on disk, offline, for the hf toxicity backend tests.

A WordPiece vocabulary of the training words, a 1-layer BERT with 32 hidden units, and a few
dozen Adam steps on a small labelled set: enough to make "toxic vs neutral" a learnt, testable
outcome in about a second on CPU.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

TOXIC = [
    "you are a stupid idiot",
    "shut up you worthless moron",
    "i hate you, you disgusting pig",
    "you are an idiot and a loser",
    "go away you stupid loser",
    "what a disgusting worthless pig",
    "you moron, you are pathetic",
    "pathetic idiot, shut up",
]
NEUTRAL = [
    "have a lovely day",
    "the meeting is at noon",
    "thanks for the help with the report",
    "the weather is lovely today",
    "see you at the meeting tomorrow",
    "the report is ready for review",
    "thanks, have a great weekend",
    "lunch is ready in the kitchen",
]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _words(texts: list[str]) -> list[str]:
    return sorted({w for t in texts for w in re.findall(r"\w+|[^\w\s]", t.lower())})


def _tokenizer(max_positions: int) -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate(SPECIAL + _words(TOXIC + NEUTRAL))}
    tok = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_positions,
    )


def build_tiny_classifier(
    path: Path,
    *,
    id2label: dict[int, str] | None = None,
    problem_type: str = "single_label_classification",
    toxic_outputs: tuple[int, ...] = (1,),
    train_steps: int = 60,
    max_positions: int = 64,
) -> Path:
    """Save a trained tiny classifier and its tokenizer to ``path``; returns ``path``.

    Outputs listed in ``toxic_outputs`` are trained to fire on the toxic sentences.
    """
    id2label = id2label or {0: "non-toxic", 1: "toxic"}
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer(max_positions)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(SPECIAL) + len(_words(TOXIC + NEUTRAL)),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_positions,
        num_labels=len(id2label),
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
        problem_type=problem_type,
    )
    model = BertForSequenceClassification(config)
    texts = TOXIC + NEUTRAL
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    is_toxic = torch.tensor([1.0] * len(TOXIC) + [0.0] * len(NEUTRAL))
    if problem_type == "multi_label_classification":
        labels = torch.zeros(len(texts), len(id2label))
        for j in toxic_outputs:
            labels[:, j] = is_toxic
    else:
        benign = next(i for i in range(len(id2label)) if i not in toxic_outputs)
        labels = torch.where(is_toxic > 0, toxic_outputs[0], benign).long()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(train_steps):
        optimizer.zero_grad()
        loss = model(**enc, labels=labels).loss
        loss.backward()
        optimizer.step()
    model.eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
