"""One torch thread for tests that run a model while the rest of the suite (and other checkouts) share the
two cores: two OpenMP threads per process spin at every barrier when the cores are oversubscribed, which made
a LoRA step ~10x slower under load (tests/retrain/conftest.py does the same for its package)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture
def one_torch_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import torch

    threads = os.environ.get("DRIFTLOOP_TEST_TORCH_THREADS", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", threads)  # for the worker processes a test starts
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    yield
    torch.set_num_threads(before)
