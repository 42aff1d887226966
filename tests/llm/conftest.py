from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from monitor.llm import LoadedLM, load_causal_lm
from tests.support.tiny_model import build_tiny_model_dir


@pytest.fixture(scope="package", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    # On a shared 2-core machine, two OpenMP threads per process spin against each other and other
    # processes: a SmolLM2 forward pass measured 5x slower than with one thread under load.
    before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("DRIFTLOOP_TEST_TORCH_THREADS", "1")))
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture()
def tiny_lm(tiny_model_dir: Path) -> LoadedLM:
    return load_causal_lm(str(tiny_model_dir), device="cpu")


@dataclass(frozen=True)
class FirstLoad:
    cache_dir: Path
    from_cache: bool
    version: str
    cache_path: Path | None


@pytest.fixture(scope="session")
def smollm2_first_load(tmp_path_factory: pytest.TempPathFactory) -> FirstLoad:
    """Converts the GGUF into a fresh cache dir (the slow path, once per session) and keeps only facts."""
    cache_dir = tmp_path_factory.mktemp("driftloop-data")
    lm = load_causal_lm(None, cache_dir=cache_dir)
    facts = FirstLoad(cache_dir, lm.from_cache, lm.version, lm.cache_path)
    del lm
    return facts


@pytest.fixture(scope="session")
def smollm2(smollm2_first_load: FirstLoad) -> LoadedLM:
    """SmolLM2 loaded from the safetensors cache the first load wrote; shared by all slow tests."""
    return load_causal_lm(None, cache_dir=smollm2_first_load.cache_dir)
