"""LoRA training mechanics and adapter switching, on the tiny self-built model (fast)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from monitor.llm import LoadedLM, attached_adapters, detach_adapter, generate_chat, sequence_nll
from retrain.training.lora import (
    LoraConfigSpec,
    TrainExample,
    _collate,
    load_adapter,
    read_train_record,
    total_steps,
    train_lora,
)

EXAMPLES = [
    TrainExample("What is the capital of France?", "Paris."),
    TrainExample("Please summarise the report.", "Refunds take five days."),
    TrainExample("Rain", "falls softly on the quiet town."),
    TrainExample([{"role": "user", "content": "Numbers?"}], "0 1 2 3"),
]
PAIRS = [(ex.prompt, ex.response) for ex in EXAMPLES]
# Tiny model, big steps: enough to move the loss clearly in a fraction of a second.
FAST = LoraConfigSpec(r=4, lr=1e-2, max_steps=12, batch_size=2)


def _mean_nll(scores: list[tuple[float, int]]) -> float:
    return sum(s for s, _ in scores) / sum(n for _, n in scores)


def test_collate_labels_only_response_tokens() -> None:
    encoded = [([5, 6, 7, 8, 9], 3), ([5, 6, 10], 2)]
    ids, mask, labels = _collate(encoded, pad_id=0)
    assert ids.tolist() == [[5, 6, 7, 8, 9], [5, 6, 10, 0, 0]]
    assert mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert labels.tolist() == [[-100, -100, -100, 8, 9], [-100, -100, 10, -100, -100]]


def test_step_count_follows_epochs_batching_and_max_steps() -> None:
    assert total_steps(16, LoraConfigSpec()) == 2
    assert total_steps(17, LoraConfigSpec(epochs=3)) == 9
    assert total_steps(16, LoraConfigSpec(batch_size=4, grad_accum=2)) == 2
    assert total_steps(16, LoraConfigSpec(max_steps=5, epochs=10)) == 5


@pytest.mark.parametrize(
    "bad",
    [{"r": 0}, {"lr": 0.0}, {"dropout": 1.0}, {"max_steps": 0}, {"batch_size": 0}, {"target_modules": ()}],
)
def test_spec_rejects_nonsense(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="LoraConfigSpec"):
        LoraConfigSpec(**bad)  # type: ignore[arg-type]


def test_training_lowers_loss_saves_adapter_and_leaves_base_untouched(
    tiny_lm: LoadedLM, tmp_path: Path
) -> None:
    base_before = sequence_nll(tiny_lm, PAIRS)
    modules_before = [type(m).__name__ for m in tiny_lm.model.modules()]
    calls: list[tuple[int, int]] = []
    result = train_lora(
        tiny_lm, EXAMPLES, FAST, tmp_path / "adapter", progress=lambda s, t, loss: calls.append((s, t))
    )

    assert result.steps == 12 and len(result.losses) == 12 and result.n_examples == 4
    assert calls == [(step, 12) for step in range(1, 13)]
    assert result.train_seconds > 0 and result.peak_rss_mb > 0
    # The base model is exactly as before: same scores, no PEFT layers left, gradients flags restored.
    assert sequence_nll(tiny_lm, PAIRS) == base_before
    assert [type(m).__name__ for m in tiny_lm.model.modules()] == modules_before
    assert tiny_lm.peft is None and attached_adapters(tiny_lm) == ()
    assert all(p.requires_grad for p in tiny_lm.model.parameters())

    saved = set(os.listdir(result.adapter_dir))
    assert {"adapter_config.json", "adapter_model.safetensors", "driftloop_train.json"} <= saved
    config = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert config["r"] == 4 and set(config["target_modules"]) == {"q_proj", "v_proj"}
    record = read_train_record(result.adapter_dir)
    assert record["losses"] == result.losses and record["n_examples"] == 4
    assert record["base_version"] == tiny_lm.version and record["spec"]["lr"] == FAST.lr
    assert os.listdir(tmp_path) == ["adapter"]  # no temp directory left behind

    name = load_adapter(tiny_lm, result.adapter_dir)
    tuned = sequence_nll(tiny_lm, PAIRS, adapter=name)
    assert _mean_nll(tuned) < _mean_nll(base_before) - 0.5
    assert sequence_nll(tiny_lm, PAIRS) == base_before  # adapter=None still means the base model
    detach_adapter(tiny_lm, name)
    assert tiny_lm.peft is None and sequence_nll(tiny_lm, PAIRS) == base_before


def test_training_is_deterministic_for_a_seed(tiny_lm: LoadedLM, tmp_path: Path) -> None:
    first = train_lora(tiny_lm, EXAMPLES, FAST, tmp_path / "a")
    second = train_lora(tiny_lm, EXAMPLES, FAST, tmp_path / "b")
    other_seed = train_lora(tiny_lm, EXAMPLES, LoraConfigSpec(**{**FAST.__dict__, "seed": 1}), tmp_path / "c")
    assert first.losses == second.losses
    weights_a = load_file(first.adapter_dir / "adapter_model.safetensors")
    weights_b = load_file(second.adapter_dir / "adapter_model.safetensors")
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert other_seed.losses != first.losses


def test_existing_out_dir_is_refused_unless_overwrite(tiny_lm: LoadedLM, tmp_path: Path) -> None:
    spec = LoraConfigSpec(r=2, max_steps=1, batch_size=4)
    out = tmp_path / "adapter"
    train_lora(tiny_lm, EXAMPLES, spec, out)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        train_lora(tiny_lm, EXAMPLES, spec, out)
    replaced = train_lora(
        tiny_lm, EXAMPLES, LoraConfigSpec(r=2, max_steps=2, batch_size=4), out, overwrite=True
    )
    assert read_train_record(out)["steps"] == replaced.steps == 2
    assert os.listdir(tmp_path) == ["adapter"]
    with pytest.raises(ValueError, match="at least one example"):
        train_lora(tiny_lm, [], spec, tmp_path / "empty")


def test_two_adapters_switch_per_call_without_reloading(tiny_lm: LoadedLM, tmp_path: Path) -> None:
    base = sequence_nll(tiny_lm, PAIRS)
    a = train_lora(tiny_lm, EXAMPLES[:2], FAST, tmp_path / "a").adapter_dir
    b = train_lora(tiny_lm, EXAMPLES[2:], FAST, tmp_path / "b").adapter_dir
    name_a = load_adapter(tiny_lm, a)
    assert load_adapter(tiny_lm, a) == name_a  # attaching twice is a no-op
    with_a = sequence_nll(tiny_lm, PAIRS, adapter=name_a)
    # A directory works too, attached on first use.
    with_b = sequence_nll(tiny_lm, PAIRS, adapter=b)
    assert len(attached_adapters(tiny_lm)) == 2
    assert with_a != base and with_b != base and with_a != with_b
    # Each adapter helps the examples it was trained on more than the other adapter does.
    assert _mean_nll(with_a[:2]) < _mean_nll(with_b[:2])
    assert _mean_nll(with_b[2:]) < _mean_nll(with_a[2:])
    assert sequence_nll(tiny_lm, PAIRS) == base
    assert sequence_nll(tiny_lm, PAIRS, adapter=name_a) == with_a  # switching back is exact

    replies_base = generate_chat(tiny_lm, ["Rain"], max_new_tokens=8)
    assert generate_chat(tiny_lm, ["Rain"], max_new_tokens=8, adapter=b) != replies_base

    # Training while adapters are attached neither disturbs them nor leaves its own behind.
    train_lora(tiny_lm, EXAMPLES, LoraConfigSpec(r=2, max_steps=2, batch_size=4), tmp_path / "c")
    assert len(attached_adapters(tiny_lm)) == 2
    assert sequence_nll(tiny_lm, PAIRS, adapter=name_a) == with_a

    detach_adapter(tiny_lm, name_a)
    assert sequence_nll(tiny_lm, PAIRS, adapter=b) == with_b
    detach_adapter(tiny_lm, attached_adapters(tiny_lm)[0])
    assert tiny_lm.peft is None and sequence_nll(tiny_lm, PAIRS) == base
    with pytest.raises(KeyError, match="not-attached"):
        sequence_nll(tiny_lm, PAIRS, adapter="not-attached")
