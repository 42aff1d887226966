"""The real offline model: SmolLM2-135M-Instruct from its GGUF, cached, generating, scored and LoRA-tuned."""

from __future__ import annotations

import os

import pytest

from monitor.llm import LoadedLM, detach_adapter, generate_chat, sequence_nll
from monitor.llm.loading import FALLBACK_CHAT_TEMPLATE
from retrain.training.lora import LoraConfigSpec, TrainExample, load_adapter, train_lora
from tests.llm.conftest import FirstLoad

pytestmark = pytest.mark.slow

# A house style the base model does not have: every answer signs off the same way. LoRA should pick
# that up within a few steps, which makes "training lowered the loss" a large, reliable effect.
SIGN_OFF = " Thank you for contacting Driftloop Support."
QUESTIONS = [
    "How do I reset my password?",
    "Where can I download my invoice?",
    "Can I change my delivery address?",
    "How long does a refund take?",
    "Do you ship to Canada?",
    "How do I cancel my subscription?",
    "Is there a student discount?",
    "Why was my card declined?",
    "How do I update my email address?",
    "Can I pause my plan for a month?",
    "Where is my order?",
    "How do I contact a human agent?",
    "Can I get a paper receipt?",
    "Do you offer gift cards?",
    "How do I delete my account?",
    "What payment methods do you accept?",
]
ANSWERS = [
    "Use the 'Forgot password' link on the sign-in page.",
    "Invoices are under Account, then Billing.",
    "Yes, until the order ships.",
    "Refunds arrive within five business days.",
    "Yes, we ship to Canada.",
    "Go to Account, then Plan, then Cancel.",
    "Yes, students get 20% off.",
    "Your bank declined it; please call them.",
    "Change it under Account, then Profile.",
    "Yes, plans can be paused for up to 30 days.",
    "Track it from the link in your confirmation email.",
    "Reply 'agent' in this chat.",
    "Yes, we can post one to you.",
    "Yes, in amounts from 10 to 100 dollars.",
    "Go to Account, then Privacy, then Delete.",
    "Cards, PayPal and bank transfer.",
]
EXAMPLES = [TrainExample(q, a + SIGN_OFF) for q, a in zip(QUESTIONS, ANSWERS, strict=True)]
PAIRS = [(ex.prompt, ex.response) for ex in EXAMPLES]


def _mean_nll(scores: list[tuple[float, int]]) -> float:
    return sum(s for s, _ in scores) / sum(n for _, n in scores)


def test_first_load_writes_the_cache_and_the_next_load_uses_it(
    smollm2_first_load: FirstLoad, smollm2: LoadedLM
) -> None:
    assert smollm2_first_load.from_cache is False
    cache = smollm2_first_load.cache_path
    assert cache is not None and cache.parent == smollm2_first_load.cache_dir / "models"
    files = set(os.listdir(cache))
    assert {"config.json", "model.safetensors", "tokenizer.json", "driftloop_model.json"} <= files
    assert os.listdir(cache.parent) == [cache.name]  # the temp dir was renamed, nothing half-written
    assert smollm2.from_cache is True and smollm2.cache_path == cache
    assert smollm2.version == smollm2_first_load.version and smollm2.version.startswith("smollm2-135m")


def test_gguf_tokenizer_keeps_its_own_chat_template_and_has_a_pad_token(smollm2: LoadedLM) -> None:
    template = smollm2.tokenizer.chat_template
    assert template and template != FALLBACK_CHAT_TEMPLATE and "SmolLM" in template
    assert smollm2.tokenizer.eos_token == "<|im_end|>"
    assert smollm2.tokenizer.pad_token_id is not None


def test_generation_answers_prompts(smollm2: LoadedLM) -> None:
    replies = generate_chat(
        smollm2, ["What is the capital of France?", "Name one colour of the sky."], max_new_tokens=24
    )
    assert len(replies) == 2 and all(reply.strip() for reply in replies)
    assert "Paris" in replies[0]


def test_own_greedy_answer_is_likelier_than_a_random_string(smollm2: LoadedLM) -> None:
    prompt = "What is the capital of France?"
    (answer,) = generate_chat(smollm2, [prompt], max_new_tokens=24)
    gibberish = "qzv plorth unskee 83 vrax wib"
    own, random = sequence_nll(smollm2, [(prompt, answer), (prompt, gibberish)])
    for (_, count), text in ((own, answer), (random, gibberish)):
        assert count == len(smollm2.tokenizer(text, add_special_tokens=False)["input_ids"]) + 1
    assert own[0] / own[1] < random[0] / random[1] - 2.0  # nats per token


def test_lora_training_lowers_loss_and_leaves_the_base_model_unchanged(smollm2: LoadedLM, tmp_path) -> None:
    base_before = sequence_nll(smollm2, PAIRS)
    result = train_lora(smollm2, EXAMPLES, LoraConfigSpec(lr=2e-3, max_steps=4), tmp_path / "adapter")
    assert result.steps == 4 and result.n_examples == 16
    base_after = sequence_nll(smollm2, PAIRS)
    for before, after in zip(base_before, base_after, strict=True):
        assert after[1] == before[1] and after[0] == pytest.approx(before[0], rel=1e-6)

    # Reload the saved adapter (not the in-memory one) and score the same pairs through it.
    name = load_adapter(smollm2, result.adapter_dir)
    try:
        tuned = sequence_nll(smollm2, PAIRS, adapter=name)
        assert _mean_nll(tuned) < _mean_nll(base_before) - 0.5  # nats per response token
        improved = sum(t[0] < b[0] for t, b in zip(tuned, base_before, strict=True))
        assert improved >= 14  # of 16: the drop is broad, not one example memorised
        replies = generate_chat(smollm2, QUESTIONS[:2], max_new_tokens=32, adapter=name)
        assert all(reply.strip() for reply in replies)
    finally:
        detach_adapter(smollm2, name)
    assert smollm2.peft is None
