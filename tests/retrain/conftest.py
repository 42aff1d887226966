"""Fixtures of the closed-loop tests: a tiny model built on the spot for fast tests, SmolLM2 (loaded once
per session) for the slow ones, projects with feedback, and settings sized for CPU runs."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from sqlalchemy.orm import Session

from monitor.llm import LoadedLM, load_causal_lm
from monitor.models import Project
from monitor.projects.service import get_or_create_project
from monitor.safety.toxicity import PROFANITY_TOXICITY_THRESHOLD, ProfanityScorer
from monitor.settings import Settings
from retrain.evaluation.scoring import Evaluators, probe_subset
from retrain.jobs.config import EvalOptions
from tests.support.factories import unique_slug
from tests.support.tiny_model import build_tiny_model_dir


@pytest.fixture(scope="package", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    # Two OpenMP threads per process spin against the other test processes on a shared 2-core machine.
    before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("DRIFTLOOP_TEST_TORCH_THREADS", "1")))
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model_dir(tmp_path_factory.mktemp("retrain-tiny") / "tiny-llama")


@pytest.fixture(scope="session")
def tiny(tiny_dir: Path) -> LoadedLM:
    return load_causal_lm(str(tiny_dir), device="cpu")


@pytest.fixture(scope="session")
def smollm2_lm() -> LoadedLM:
    """The real default base model, loaded once per test session from the session's shared model cache
    (the root conftest points DRIFTLOOP_DATA_DIR at one directory, so it is converted once for all tests)."""
    return load_causal_lm(None, device="cpu")


@pytest.fixture
def tiny_settings(settings: Settings, tiny_dir: Path) -> Settings:
    """Settings for a CPU-sized run on the tiny model (a few steps, one probe template, short answers)."""
    return settings.model_copy(update={
        "base_model": str(tiny_dir), "retrain_min_examples": 8, "retrain_max_steps": 3, "retrain_batch_size": 4,
        "retrain_max_length": 96, "retrain_eval_max_examples": 4, "retrain_eval_max_new_tokens": 6,
        "retrain_probe_templates": 1, "retrain_probe_axes": "gender", "device": "cpu"})


@pytest.fixture
def fast_evaluators() -> Evaluators:
    """The real scorer and a one-template probe subset; no embedding model (similarity is reported as None)."""
    return Evaluators(ProfanityScorer(), PROFANITY_TOXICITY_THRESHOLD, None,
                      probe_subset(EvalOptions(probe_templates=1, probe_axes=("gender",))))


@pytest.fixture
def project(session: Session) -> Project:
    p = get_or_create_project(session, unique_slug())
    session.commit()
    return p


@pytest.fixture(scope="session")
def tiny_adapter(tiny: LoadedLM, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (one-step) LoRA adapter of the tiny model."""
    from retrain.training.lora import LoraConfigSpec, TrainExample, train_lora

    examples = [TrainExample(f"What is case {i}?", f"Case {i} is closed.") for i in range(4)]
    out = tmp_path_factory.mktemp("tiny-adapter") / "adapter"
    return train_lora(tiny, examples, LoraConfigSpec(max_steps=1, batch_size=4), out).adapter_dir


@pytest.fixture
def retrain_handler() -> Iterator[None]:
    """The `retrain` alert action handled by the loop, as the CLI and Celery worker entry points install it."""
    from retrain.jobs.alerting import install, uninstall

    assert install()
    yield
    uninstall()


@pytest.fixture
def process_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., Settings]]:
    """Sets the environment the process-wide settings come from (what alert hooks and jobs read):
    `configure(DRIFTLOOP_X="...")` returns the resulting settings."""
    from monitor.settings import get_settings, reset_settings_cache

    def configure(**env: str) -> Settings:
        for k, v in {"DRIFTLOOP_DATA_DIR": str(tmp_path / "data"), "DRIFTLOOP_DEVICE": "cpu", **env}.items():
            monkeypatch.setenv(k, v)
        reset_settings_cache()
        return get_settings()

    yield configure
    reset_settings_cache()
