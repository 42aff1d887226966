"""Local causal-LM access for driftloop: load, chat-generate, and score (prompt, response) pairs.

Used by the bias probes in `monitor/` and by `retrain/` (LoRA training, champion/challenger
evaluation). The pieces live in `loading` (references, dtype policy, cache) and `adapters` (LoRA
adapters switched per call); the device choice in `monitor.devices`; this module is the one to import.

Every prompt goes through the tokenizer's chat template, and a response is scored as the tokens the
model would have to generate after the assistant header: the response's own tokens followed by the
end-of-turn (EOS) token. Training (`retrain.training.lora`) uses exactly the same encoding, via `encode_pair`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from monitor.devices import pick_device
from monitor.llm.adapters import (
    active_adapter,
    adapter_name_for,
    attach_adapter,
    attached_adapters,
    detach_adapter,
)
from monitor.llm.loading import (
    DEFAULT_MODEL_ALIAS,
    LoadedLM,
    ModelLoadError,
    ModelRef,
    default_data_dir,
    load_causal_lm,
    pick_dtype,
    resolve_model_ref,
)

__all__ = [
    "DEFAULT_MODEL_ALIAS",
    "Chat",
    "LoadedLM",
    "ModelLoadError",
    "ModelRef",
    "ProgressCallback",
    "adapter_name_for",
    "attach_adapter",
    "attached_adapters",
    "default_data_dir",
    "detach_adapter",
    "encode_pair",
    "encode_prompt",
    "generate_chat",
    "load_causal_lm",
    "pick_device",
    "pick_dtype",
    "resolve_model_ref",
    "sequence_nll",
]

Chat = str | list[dict[str, str]]
ProgressCallback = Callable[[int, int], None]  # (items done, items total)


def to_messages(prompt: Chat, system: str | None = None) -> list[dict[str, str]]:
    """A bare string becomes one user turn; `system` is prepended unless the chat already has one."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    if system is not None and not (messages and messages[0].get("role") == "system"):
        messages.insert(0, {"role": "system", "content": system})
    return messages


def encode_prompt(lm: LoadedLM, prompt: Chat, *, system: str | None = None) -> list[int]:
    """Token ids of the chat-templated prompt, ending with the assistant header."""
    text = lm.tokenizer.apply_chat_template(
        to_messages(prompt, system), tokenize=False, add_generation_prompt=True
    )
    # The template already writes BOS/special tokens as text; adding them again would double them.
    ids: list[int] = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids


def encode_pair(
    lm: LoadedLM, prompt: Chat, response: str, *, system: str | None = None, max_length: int | None = None
) -> tuple[list[int], int]:
    """Ids of prompt + response + EOS, and how many leading ids belong to the prompt.

    Longer than `max_length`: the prompt loses tokens from its start first (the response is what is
    scored or trained on), then the response is cut at the end.
    """
    prompt_ids = encode_prompt(lm, prompt, system=system)
    response_ids: list[int] = lm.tokenizer(response, add_special_tokens=False)["input_ids"]
    response_ids = [*response_ids, int(lm.tokenizer.eos_token_id)]
    if max_length is not None and len(prompt_ids) + len(response_ids) > max_length:
        keep_prompt = max(1, max_length - len(response_ids))
        prompt_ids = prompt_ids[-keep_prompt:]
        response_ids = response_ids[: max_length - len(prompt_ids)]
    return prompt_ids + response_ids, len(prompt_ids)


def _eos_ids(lm: LoadedLM) -> list[int]:
    ids = {int(lm.tokenizer.eos_token_id)}
    configured = getattr(getattr(lm.model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif isinstance(configured, list):
        ids.update(int(i) for i in configured)
    return sorted(ids)


def _pad(rows: Sequence[list[int]], pad_id: int, *, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, span] = torch.tensor(row, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


def generate_chat(
    lm: LoadedLM,
    prompts: Sequence[Chat],
    *,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    batch_size: int = 8,
    system: str | None = None,
    adapter: str | Path | None = None,
    seed: int | None = None,
    progress: ProgressCallback | None = None,
) -> list[str]:
    """The assistant's reply to each prompt (only the new text), in input order.

    temperature 0 is greedy decoding; above 0 samples (pass `seed` for repeatable samples).
    `adapter`: an attached adapter name or a saved adapter directory; None uses the base model.
    """
    from transformers import GenerationConfig

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    encoded = [encode_prompt(lm, prompt, system=system) for prompt in prompts]
    # Batching prompts of similar length wastes less compute on padding; results are put back in order.
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=temperature > 0,
        temperature=temperature if temperature > 0 else None,
        top_p=None,
        top_k=None,
        pad_token_id=int(lm.tokenizer.pad_token_id),
        eos_token_id=_eos_ids(lm),
    )
    outputs: list[str] = [""] * len(encoded)
    with lm.lock, active_adapter(lm, adapter), torch.inference_mode():
        if seed is not None:
            torch.manual_seed(seed)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            ids, mask = _pad([encoded[i] for i in batch], int(lm.tokenizer.pad_token_id), left=True)
            generated = lm.model.generate(
                input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device), generation_config=config
            )
            new_tokens = generated[:, ids.shape[1] :].cpu()
            for row, index in enumerate(batch):
                outputs[index] = lm.tokenizer.decode(new_tokens[row], skip_special_tokens=True).strip()
            if progress is not None:
                progress(min(start + batch_size, len(order)), len(order))
    return outputs


def _accepts_logits_to_keep(model: Any) -> bool:
    return "logits_to_keep" in inspect.signature(model.forward).parameters


def sequence_nll(
    lm: LoadedLM,
    pairs: Sequence[tuple[Chat, str]],
    *,
    batch_size: int = 8,
    system: str | None = None,
    adapter: str | Path | None = None,
    max_length: int | None = None,
    progress: ProgressCallback | None = None,
) -> list[tuple[float, int]]:
    """Per (prompt, response): summed negative log-likelihood (nats) of the response tokens, and their count.

    Only the response tokens and the closing EOS are scored, never the prompt. Mean NLL is
    `sum / count`; perplexity over a set is `exp(total sum / total count)`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    encoded = [encode_pair(lm, p, r, system=system, max_length=max_length) for p, r in pairs]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    results: list[tuple[float, int]] = [(0.0, 0)] * len(encoded)
    with lm.lock, active_adapter(lm, adapter), torch.inference_mode():
        trim = _accepts_logits_to_keep(lm.model)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            rows = [encoded[i][0] for i in batch]
            # Right padding keeps each row's positions 0..n-1, as in training.
            ids, mask = _pad(rows, int(lm.tokenizer.pad_token_id), left=False)
            labels = torch.full_like(ids, -100)
            for row, index in enumerate(batch):
                seq, n_prompt = encoded[index]
                labels[row, n_prompt : len(seq)] = ids[row, n_prompt : len(seq)]
            # Logits over the whole vocabulary are the memory hog; only positions that predict a
            # response token are needed, i.e. from the shortest prompt's last token onwards.
            first = min(encoded[i][1] for i in batch) - 1
            kwargs = {"logits_to_keep": ids.shape[1] - first} if trim else {}
            logits = lm.model(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device), **kwargs).logits
            if not trim:
                logits = logits[:, first:]
            targets = labels[:, first + 1 :].to(lm.device)
            token_nll = torch.nn.functional.cross_entropy(
                logits[:, :-1].float().transpose(1, 2), targets, ignore_index=-100, reduction="none"
            )
            sums = token_nll.sum(dim=1).cpu()
            counts = (targets != -100).sum(dim=1).cpu()
            for row, index in enumerate(batch):
                results[index] = (float(sums[row]), int(counts[row]))
            if progress is not None:
                progress(min(start + batch_size, len(order)), len(order))
    return results
