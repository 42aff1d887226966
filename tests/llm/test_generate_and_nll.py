"""Chat encoding, batched generation and response-only NLL, checked on the tiny self-built model."""

from __future__ import annotations

import math

import torch

from monitor.llm import Chat, LoadedLM, encode_pair, encode_prompt, generate_chat, sequence_nll

PROMPTS = [
    "What is the capital of France?",
    "x",
    "Please summarise the report in one sentence, and mention the refunds.",
    "Rain",
]
PAIRS: list[tuple[Chat, str]] = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("x", "y"),
    ("Please summarise the report in one sentence.", "Refunds are processed within five business days."),
    ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Numbers?"}], "1 2 3"),
]


def _response_len(lm: LoadedLM, response: str) -> int:
    return len(lm.tokenizer(response, add_special_tokens=False)["input_ids"])


def test_prompt_goes_through_the_chat_template(tiny_lm: LoadedLM) -> None:
    ids = encode_prompt(tiny_lm, "hello", system="Be kind.")
    text = tiny_lm.tokenizer.decode(ids)
    expected = (
        "<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
    )
    assert text == expected
    as_messages = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "hello"}]
    assert encode_prompt(tiny_lm, as_messages) == ids
    # A chat that already has a system turn keeps it rather than getting a second one.
    assert encode_prompt(tiny_lm, as_messages, system="Other") == ids


def test_pair_is_prompt_then_response_then_eos(tiny_lm: LoadedLM) -> None:
    response = "The capital of France is Paris."
    ids, n_prompt = encode_pair(tiny_lm, "What is the capital of France?", response)
    assert ids[:n_prompt] == encode_prompt(tiny_lm, "What is the capital of France?")
    response_ids = tiny_lm.tokenizer(response, add_special_tokens=False)["input_ids"]
    assert ids[n_prompt:] == [*response_ids, tiny_lm.tokenizer.eos_token_id]


def test_pair_truncation_keeps_the_response(tiny_lm: LoadedLM) -> None:
    long_prompt = "The quick brown fox jumps over the lazy dog. " * 20
    full, _ = encode_pair(tiny_lm, long_prompt, "Paris.")
    cut, n_prompt = encode_pair(tiny_lm, long_prompt, "Paris.", max_length=24)
    assert len(full) > 24 and len(cut) == 24
    # The response (and EOS) survive whole; the prompt loses its oldest tokens.
    response_len = _response_len(tiny_lm, "Paris.") + 1
    assert len(cut) - n_prompt == response_len
    assert cut == full[-24:]


def test_generation_returns_one_reply_per_prompt_independent_of_batching(tiny_lm: LoadedLM) -> None:
    one_by_one = generate_chat(tiny_lm, PROMPTS, max_new_tokens=12, batch_size=1)
    batched = generate_chat(tiny_lm, PROMPTS, max_new_tokens=12, batch_size=4)
    # Left padding and length-sorting must not change any greedy reply or its position.
    assert batched == one_by_one
    assert len(batched) == len(PROMPTS) and all(reply for reply in batched)
    assert len(set(batched)) > 1  # replies really depend on the prompt


def test_sampling_is_repeatable_with_a_seed_and_varies_without(tiny_lm: LoadedLM) -> None:
    prompts = ["Rain"] * 4
    first = generate_chat(tiny_lm, prompts, max_new_tokens=10, temperature=1.0, seed=7)
    assert generate_chat(tiny_lm, prompts, max_new_tokens=10, temperature=1.0, seed=7) == first
    assert len(set(first)) > 1  # four samples of the same prompt differ


def test_progress_reports_every_batch(tiny_lm: LoadedLM) -> None:
    calls: list[tuple[int, int]] = []
    generate_chat(
        tiny_lm, PROMPTS, max_new_tokens=2, batch_size=3, progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(3, 4), (4, 4)]


def _reference_nll(lm: LoadedLM, prompt: Chat, response: str) -> float:
    """Same quantity computed the long way: one unpadded sequence, full log-softmax, manual sum."""
    ids, n_prompt = encode_pair(lm, prompt, response)
    with torch.inference_mode():
        logits = lm.model(torch.tensor([ids])).logits[0]
    log_probs = torch.log_softmax(logits.double(), dim=-1)
    return -sum(float(log_probs[pos - 1, ids[pos]]) for pos in range(n_prompt, len(ids)))


def test_nll_counts_only_response_tokens_and_matches_a_reference(tiny_lm: LoadedLM) -> None:
    scores = sequence_nll(tiny_lm, PAIRS, batch_size=4)
    for (prompt, response), (nll, count) in zip(PAIRS, scores, strict=True):
        assert count == _response_len(tiny_lm, response) + 1  # + the closing EOS
        assert math.isclose(nll, _reference_nll(tiny_lm, prompt, response), rel_tol=1e-4)
    # Right padding and length-sorting must not change any score or its position.
    for single, batched in zip(sequence_nll(tiny_lm, PAIRS, batch_size=1), scores, strict=True):
        assert single[1] == batched[1] and math.isclose(single[0], batched[0], rel_tol=1e-5)


def test_nll_depends_on_the_prompt_but_not_its_length(tiny_lm: LoadedLM) -> None:
    short, long = sequence_nll(
        tiny_lm, [("Rain", "Paris."), ("Rain falls softly on the quiet town.", "Paris.")]
    )
    assert short[1] == long[1]
    assert short[0] != long[0]
