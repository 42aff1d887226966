"""One loaded base model per process, shared by retraining jobs and the model server.

Loading SmolLM2 takes seconds (tens on first conversion) and hundreds of MB; a worker that runs many jobs,
or a server that swaps adapters, must load the base once. Adapters are attached to it by directory.
"""

from __future__ import annotations

import threading
from pathlib import Path

from monitor.llm import LoadedLM, load_causal_lm
from monitor.settings import Settings

_lock = threading.Lock()
_loaded: dict[tuple[str, str, str], LoadedLM] = {}


def _key(ref: str | None, settings: Settings) -> tuple[str, str, str]:
    return (ref or "", settings.device, str(Path(settings.data_dir).resolve()))


def get_lm(ref: str | None, settings: Settings) -> LoadedLM:
    """The process's model for `ref` (None: the offline default), loaded on first use."""
    key = _key(ref, settings)
    with _lock:
        lm = _loaded.get(key)
        if lm is None:
            device = None if settings.device == "auto" else settings.device
            lm = _loaded[key] = load_causal_lm(ref, device=device, cache_dir=settings.data_dir)
        return lm


def provide(ref: str | None, settings: Settings, lm: LoadedLM) -> None:
    """Use an already loaded model for `ref` (tests and benchmarks load once per session)."""
    with _lock:
        _loaded[_key(ref, settings)] = lm


def forget_all() -> None:
    with _lock:
        _loaded.clear()
