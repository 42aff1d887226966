"""A tiny Llama-architecture causal LM and byte-level BPE tokenizer, built from scratch in a second.

It exercises every code path that does not depend on what a real model *knows*: loading from a local
directory, chat templating, padding, NLL accounting, LoRA training mechanics and adapter switching.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France? The capital of France is Paris.",
    "Please summarise the report in one sentence.",
    "Refunds are processed within five business days.",
    "user assistant system You are a helpful assistant.",
    "Rain falls softly on the quiet town at night.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000",
] * 4


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """No chat template and no pad token on purpose: the loader must add both."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", bos_token="<|im_start|>"
    )


def build_tiny_model_dir(directory: Path, *, seed: int = 0) -> Path:
    tokenizer = build_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
        # At the usual 0.02 a random model greedily repeats one token (often whitespace, which decodes
        # to nothing after strip); wider weights give varied text, so generation tests see real strings.
        initializer_range=0.3,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
