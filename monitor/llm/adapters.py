"""LoRA adapters on a loaded base model, switchable per call without reloading the base weights.

PEFT injects adapter layers into the base model's modules in place, so once any adapter is attached
a plain forward pass would run *through* it. Every forward pass in `monitor.llm` therefore goes
through `active_adapter(lm, ...)`, which either selects one named adapter or disables them all
(base behaviour). Removing the last adapter unloads PEFT and restores the untouched base model.

Public names are re-exported from `monitor.llm`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from monitor.llm.loading import LoadedLM, ModelLoadError

# Saved beside the base weights' requires_grad flags so detaching the last adapter restores them.
_SAVED_GRAD_FLAGS = "_driftloop_requires_grad"


def adapter_name_for(adapter_dir: str | Path) -> str:
    """A stable PEFT adapter name for a directory (PEFT names become module keys: no dots allowed)."""
    resolved = Path(adapter_dir).resolve()
    stem = re.sub(r"[^A-Za-z0-9_]+", "_", resolved.name).strip("_")[:40] or "adapter"
    return f"{stem}_{hashlib.sha256(str(resolved).encode()).hexdigest()[:8]}"


def attached_adapters(lm: LoadedLM) -> tuple[str, ...]:
    """Names of the adapters currently attached to `lm` (empty for a bare base model)."""
    return tuple(lm.peft.peft_config) if lm.peft is not None else ()


def _remember_grad_flags(lm: LoadedLM) -> None:
    flags = {name: param.requires_grad for name, param in lm.model.named_parameters()}
    setattr(lm, _SAVED_GRAD_FLAGS, flags)


def _restore_grad_flags(lm: LoadedLM) -> None:
    flags: dict[str, bool] = getattr(lm, _SAVED_GRAD_FLAGS, {})
    for name, param in lm.model.named_parameters():
        if name in flags:
            param.requires_grad_(flags[name])


def attach_adapter(lm: LoadedLM, adapter_dir: str | Path, *, name: str | None = None) -> str:
    """Load a saved LoRA adapter onto `lm` (inference only) and return its name for `adapter=` arguments.

    Attaching the same directory twice is a no-op that returns the same name.
    """
    from peft import PeftModel

    path = Path(adapter_dir)
    if not (path / "adapter_config.json").is_file():
        raise ModelLoadError(f"{adapter_dir} is not a saved PEFT adapter (no adapter_config.json)")
    name = name or adapter_name_for(path)
    with lm.lock:
        if name in attached_adapters(lm):
            return name
        if lm.peft is None:
            _remember_grad_flags(lm)
            lm.peft = PeftModel.from_pretrained(lm.model, str(path), adapter_name=name, is_trainable=False)
        else:
            lm.peft.load_adapter(str(path), adapter_name=name, is_trainable=False)
        lm.peft.to(lm.device)
        lm.model.eval()
    return name


def add_trainable_adapter(lm: LoadedLM, name: str, peft_config: Any) -> Any:
    """Attach a fresh, trainable adapter `name`, make it the active one, and return the PeftModel."""
    from peft import get_peft_model

    with lm.lock:
        if name in attached_adapters(lm):
            raise ValueError(f"an adapter named {name!r} is already attached")
        if lm.peft is None:
            _remember_grad_flags(lm)
            lm.peft = get_peft_model(lm.model, peft_config, adapter_name=name)
        else:
            lm.peft.add_adapter(name, peft_config)
        lm.peft.set_adapter(name)
        lm.peft.to(lm.device)
        # Only this adapter's weights train; the base and any other adapter stay frozen.
        marker = f".{name}."
        for param_name, param in lm.peft.named_parameters():
            param.requires_grad_(marker in param_name)
        return lm.peft


def detach_adapter(lm: LoadedLM, name: str) -> None:
    """Remove adapter `name`; removing the last one unloads PEFT and leaves the original base model."""
    with lm.lock:
        if name not in attached_adapters(lm):
            raise KeyError(f"no adapter named {name!r} is attached (attached: {attached_adapters(lm)})")
        if len(attached_adapters(lm)) == 1:
            # unload() swaps the LoRA layers back for the original modules without merging any weights.
            lm.model = lm.peft.unload()
            lm.peft = None
            _restore_grad_flags(lm)
        else:
            # Switch away first: deleting the active adapter makes PEFT pick another and warn.
            lm.peft.set_adapter(next(other for other in attached_adapters(lm) if other != name))
            lm.peft.delete_adapter(name)
        lm.model.eval()


@contextmanager
def active_adapter(lm: LoadedLM, adapter: str | Path | None) -> Iterator[None]:
    """Run the body with exactly one adapter active, or (adapter=None) with none, i.e. the base model.

    `adapter` is an attached adapter's name or a saved adapter directory (attached on first use).
    The caller must hold `lm.lock`.
    """
    if adapter is None:
        if lm.peft is None:
            yield
        else:
            with lm.peft.disable_adapter():
                yield
        return
    name = str(adapter)
    if name not in attached_adapters(lm):
        if not Path(name).is_dir():
            raise KeyError(
                f"adapter {name!r} is neither attached (have {attached_adapters(lm)}) nor a directory"
            )
        name = attach_adapter(lm, name)
    lm.peft.set_adapter(name)
    yield
