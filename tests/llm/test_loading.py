"""Model references, loading from a local directory, the hub error path, and the atomic cache writer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import huggingface_hub.constants
import pytest
import torch

from monitor.llm import (
    LoadedLM,
    ModelLoadError,
    load_causal_lm,
    pick_device,
    pick_dtype,
    resolve_model_ref,
)
from monitor.llm.loading import FALLBACK_CHAT_TEMPLATE, _write_cache_atomically
from retrain.training.memory import peak_rss_mb, reset_peak_rss


def test_default_ref_finds_the_smollm2_gguf() -> None:
    for spelling in (None, "smollm2", " SmolLM2 "):
        ref = resolve_model_ref(spelling)
        assert ref.kind == "gguf"
        assert ref.path is not None and ref.gguf_file is not None
        gguf = ref.path / ref.gguf_file
        assert gguf.is_file() and gguf.suffix == ".gguf"
        assert gguf.stat().st_size > 50_000_000  # a real 135M-parameter model, not a stub
        assert "smollm2" in ref.name


def test_local_paths_and_hub_ids_resolve_by_kind(tiny_model_dir: Path, tmp_path: Path) -> None:
    assert resolve_model_ref(str(tiny_model_dir)).kind == "local_dir"
    hub = resolve_model_ref("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert (hub.kind, hub.hub_id) == ("hub", "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert "/" not in hub.name  # used as a directory name

    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_model_ref(str(tmp_path / "missing-model"))
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_model_ref("./nowhere/model.gguf")
    text_file = tmp_path / "weights.txt"
    text_file.write_text("not a model")
    with pytest.raises(ModelLoadError, match=r"not a \.gguf"):
        resolve_model_ref(str(text_file))
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        resolve_model_ref(str(tmp_path))


def test_device_and_dtype_policy() -> None:
    assert pick_device() == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_dtype("cpu") == torch.float32
    if torch.cuda.is_available():
        assert pick_dtype("cuda") in (torch.bfloat16, torch.float16)


def test_tiny_model_loads_from_a_local_dir_with_template_and_pad(
    tiny_lm: LoadedLM, tiny_model_dir: Path
) -> None:
    assert tiny_lm.ref.kind == "local_dir"
    assert tiny_lm.from_cache is False and tiny_lm.cache_path is None
    assert tiny_lm.device == "cpu" and next(tiny_lm.model.parameters()).dtype == torch.float32
    assert not tiny_lm.model.training
    # The tiny tokenizer ships with neither; the loader must supply both.
    assert tiny_lm.tokenizer.chat_template == FALLBACK_CHAT_TEMPLATE
    assert tiny_lm.tokenizer.pad_token_id == tiny_lm.tokenizer.eos_token_id
    again = load_causal_lm(str(tiny_model_dir), device="cpu")
    assert again.version == tiny_lm.version and again.version.startswith("tiny-llama-")


def test_version_of_a_local_dir_follows_its_files(tiny_model_dir: Path, tmp_path: Path) -> None:
    from tests.support.tiny_model import build_tiny_model_dir

    copy = build_tiny_model_dir(tmp_path / "tiny-llama")
    before = load_causal_lm(str(copy), device="cpu").version
    config = copy / "config.json"
    config.write_text(config.read_text() + "\n")
    assert load_causal_lm(str(copy), device="cpu").version != before


def test_unreachable_hub_id_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Offline mode makes the hub unreachable at once instead of after several network retries.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelLoadError) as caught:
        load_causal_lm("driftloop-tests/no-such-model", cache_dir=tmp_path)
    message = str(caught.value)
    assert "driftloop-tests/no-such-model" in message
    assert "Hugging Face model id" in message and "local model directory" in message


class _FailingTokenizer:
    def save_pretrained(self, directory: Any) -> None:
        (Path(directory) / "tokenizer.json").write_text("{")  # half written, then the process "dies"
        raise RuntimeError("disk full")


def test_cache_write_is_all_or_nothing(tiny_lm: LoadedLM, tmp_path: Path) -> None:
    final = tmp_path / "models" / "tiny-abc"
    with pytest.raises(RuntimeError, match="disk full"):
        _write_cache_atomically(tiny_lm.model, _FailingTokenizer(), final, {"version": "x"})
    assert not final.exists()
    assert os.listdir(final.parent) == []  # no temp directory left behind

    _write_cache_atomically(tiny_lm.model, tiny_lm.tokenizer, final, {"version": "x"})
    assert {"config.json", "model.safetensors", "driftloop_model.json", "tokenizer.json"} <= set(
        os.listdir(final)
    )
    assert os.listdir(final.parent) == ["tiny-abc"]
    reloaded = load_causal_lm(str(final), device="cpu")
    probe = torch.tensor([[1, 5, 9, 42]])
    with torch.inference_mode():
        assert torch.equal(reloaded.model(probe).logits, tiny_lm.model(probe).logits)


def test_peak_rss_sees_a_large_allocation() -> None:
    reset_peak_rss()
    baseline = peak_rss_mb()
    block = torch.ones(64 * 1024 * 1024, dtype=torch.float32)  # 256 MiB, every page touched
    assert peak_rss_mb() - baseline > 200
    del block


def test_default_cache_dir_follows_the_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from monitor.llm import default_data_dir
    from monitor.settings import reset_settings_cache

    monkeypatch.setenv("DRIFTLOOP_DATA_DIR", str(tmp_path / "data"))
    reset_settings_cache()
    try:
        assert default_data_dir() == tmp_path / "data"
    finally:
        monkeypatch.delenv("DRIFTLOOP_DATA_DIR")
        reset_settings_cache()
    assert default_data_dir() != tmp_path / "data"
