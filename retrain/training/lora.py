"""LoRA fine-tuning of the loaded base model on (prompt, response) examples: a plain, seeded training loop.

The loss covers the response tokens (and the closing EOS) only: prompt and padding positions get label
-100, so the adapter learns what to answer, not how users ask. Examples are encoded with
`monitor.llm.encode_pair`, the same encoding `sequence_nll` scores, so training loss and evaluation
NLL measure the same thing.

The base `LoadedLM` is left as it was: the adapter is trained as a temporary named PEFT adapter and
detached afterwards (which unloads PEFT entirely when no other adapter is attached).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from monitor.llm import Chat, LoadedLM, attach_adapter, encode_pair
from monitor.llm.adapters import add_trainable_adapter, detach_adapter
from retrain.jobs.config import LoraConfigSpec
from retrain.training.memory import peak_rss_mb, reset_peak_rss

TRAIN_RECORD = "driftloop_train.json"

TrainProgress = Callable[[int, int, float], None]  # (step done, total steps, that step's loss)


@dataclass(frozen=True)
class TrainExample:
    """One supervised pair: the chat so far (a string is one user turn) and the wanted assistant reply."""

    prompt: Chat
    response: str


@dataclass(frozen=True)
class TrainResult:
    adapter_dir: Path
    steps: int
    losses: list[float]  # mean response-token loss of each optimizer step, in order
    train_seconds: float
    peak_rss_mb: float  # peak resident memory of the process during training (MiB)
    n_examples: int


def total_steps(n_examples: int, spec: LoraConfigSpec) -> int:
    """Optimizer steps a run takes: `max_steps` if set, else enough to see every example `epochs` times."""
    per_epoch = math.ceil(n_examples / (spec.batch_size * spec.grad_accum))
    return spec.max_steps if spec.max_steps is not None else per_epoch * spec.epochs


def _micro_batches(n: int, spec: LoraConfigSpec) -> Iterator[list[int]]:
    """Endless seeded shuffles of example indices cut into micro-batches; epochs cycle as data runs out."""
    generator = torch.Generator().manual_seed(spec.seed)
    while True:
        order = torch.randperm(n, generator=generator).tolist()
        for start in range(0, n, spec.batch_size):
            yield order[start : start + spec.batch_size]


def _collate(
    encoded: Sequence[tuple[list[int], int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids, attention mask, and labels that are -100 except on response tokens."""
    width = max(len(ids) for ids, _ in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for row, (seq, n_prompt) in enumerate(encoded):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
        labels[row, n_prompt : len(seq)] = ids[row, n_prompt : len(seq)]
    return ids, mask, labels


def response_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the positions whose label is not -100."""
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].float().transpose(1, 2), labels[:, 1:], ignore_index=-100
    )


def _peft_config(spec: LoraConfigSpec) -> Any:
    from peft import LoraConfig, TaskType

    return LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=spec.r,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=list(spec.target_modules),
        bias="none",
    )


def _autocast(lm: LoadedLM) -> AbstractContextManager[Any]:
    # Mixed precision only pays (and is only numerically proven) on CUDA; CPU stays in float32.
    if lm.device.startswith("cuda") and lm.dtype in (torch.bfloat16, torch.float16):
        return torch.autocast("cuda", dtype=lm.dtype)
    return nullcontext()


def _publish(staging: Path, out_dir: Path, overwrite: bool) -> None:
    """Rename the finished adapter into place, so `out_dir` is either absent or complete."""
    if out_dir.exists():
        if not overwrite:
            raise FileExistsError(f"{out_dir} already exists; pass overwrite=True to replace it")
        trash = out_dir.with_name(f".trash-{out_dir.name}-{uuid.uuid4().hex[:8]}")
        os.rename(out_dir, trash)
        os.rename(staging, out_dir)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(staging, out_dir)


def train_lora(
    lm: LoadedLM,
    examples: Sequence[TrainExample],
    spec: LoraConfigSpec,
    out_dir: str | Path,
    *,
    system: str | None = None,
    overwrite: bool = False,
    progress: TrainProgress | None = None,
) -> TrainResult:
    """Train a LoRA adapter on `examples` and save it (PEFT format + `driftloop_train.json`) to `out_dir`.

    `lm` is unchanged afterwards. Deterministic for a given seed on a given device.
    """
    if not examples:
        raise ValueError("train_lora needs at least one example")
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already exists; pass overwrite=True to replace it")
    encoded = [
        encode_pair(lm, ex.prompt, ex.response, system=system, max_length=spec.max_length) for ex in examples
    ]
    steps = total_steps(len(encoded), spec)
    pad_id = int(lm.tokenizer.pad_token_id)
    name = f"train_{uuid.uuid4().hex[:8]}"
    losses: list[float] = []
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f".tmp-{out_dir.name}-", dir=out_dir.parent))
    with lm.lock:
        reset_peak_rss()
        started = time.perf_counter()
        torch.manual_seed(spec.seed)  # LoRA A-matrix init and dropout masks
        model = add_trainable_adapter(lm, name, _peft_config(spec))
        try:
            params = [p for p in model.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(params, lr=spec.lr)
            scaler = (
                torch.amp.GradScaler("cuda") if lm.dtype == torch.float16 and lm.device != "cpu" else None
            )
            batches = _micro_batches(len(encoded), spec)
            model.train()
            for step in range(steps):
                step_loss = 0.0
                for _ in range(spec.grad_accum):
                    ids, mask, labels = _collate([encoded[i] for i in next(batches)], pad_id)
                    with _autocast(lm):
                        logits = model(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device)).logits
                    loss = response_loss(logits, labels.to(lm.device)) / spec.grad_accum
                    (scaler.scale(loss) if scaler is not None else loss).backward()
                    step_loss += float(loss.detach())
                if scaler is not None:
                    scaler.unscale_(optimizer)
                if spec.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(params, spec.max_grad_norm)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(step_loss)
                if progress is not None:
                    progress(step + 1, steps, step_loss)
            model.eval()
            train_seconds = time.perf_counter() - started
            peak = peak_rss_mb()
            model.save_pretrained(str(workdir), selected_adapters=[name], save_embedding_layers=False)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        finally:
            detach_adapter(lm, name)
    # PEFT writes a non-"default" adapter into a subdirectory named after it.
    staging = workdir / name if (workdir / name / "adapter_config.json").is_file() else workdir
    record = {
        "spec": asdict(spec),
        "losses": losses,
        "steps": steps,
        "n_examples": len(encoded),
        "train_seconds": train_seconds,
        "peak_rss_mb": peak,
        "base_model": lm.ref.source,
        "base_version": lm.version,
        "device": lm.device,
    }
    (staging / TRAIN_RECORD).write_text(json.dumps(record, indent=2))
    try:
        _publish(staging, out_dir, overwrite)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return TrainResult(out_dir, steps, losses, train_seconds, peak, len(encoded))


def load_adapter(lm: LoadedLM, adapter_dir: str | Path) -> str:
    """Attach a trained adapter to `lm` without reloading base weights; returns the name to pass as
    `adapter=` to `monitor.llm.generate_chat` / `sequence_nll` (`adapter=None` still means the base model).
    """
    return attach_adapter(lm, adapter_dir)


def read_train_record(adapter_dir: str | Path) -> dict[str, Any]:
    """The `driftloop_train.json` written next to an adapter by `train_lora`."""
    record: dict[str, Any] = json.loads((Path(adapter_dir) / TRAIN_RECORD).read_text())
    return record
