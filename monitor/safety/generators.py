"""Generators for ``run_probes``: callables that take prompts and return one completion each.

- ``openai_compatible_generator``: any server speaking the OpenAI chat-completions protocol
  (vLLM, llama.cpp server, Ollama, TGI, hosted APIs). One request per prompt, sent in order.
- ``local_generator``: a causal LM loaded in-process with ``monitor.llm``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from monitor.llm import LoadedLM

Generate = Callable[[list[str]], list[str]]


class GenerationError(RuntimeError):
    """A generator could not produce a completion (HTTP error, timeout, malformed reply)."""


def chat_completions_url(base_url: str) -> str:
    """``<base>/v1/chat/completions``, accepting a base URL with or without the ``/v1`` suffix."""
    base = base_url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
    if base.endswith("/chat/completions"):
        return base
    if base.endswith("/v1"):
        return f"{base}/chat/completions"
    return f"{base}/v1/chat/completions"


def openai_compatible_generator(
    base_url: str,
    model: str,
    api_key: str | None = None,
    *,
    max_tokens: int = 64,
    temperature: float = 0.0,
    system: str | None = None,
    timeout: float = 60.0,
    extra_body: Mapping[str, Any] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Generate:
    """A generator that POSTs each prompt to ``<base_url>/v1/chat/completions``.

    Prompts are sent sequentially over one connection per call, so a probe run never floods a
    production endpoint. Any failure raises ``GenerationError`` naming the URL, the prompt's
    position and the server's answer. ``transport`` is for custom networking (proxies, mTLS).
    """
    url = chat_completions_url(base_url)
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"

    def generate(prompts: list[str]) -> list[str]:
        out: list[str] = []
        with httpx.Client(timeout=timeout, headers=headers, transport=transport) as client:
            for i, prompt in enumerate(prompts):
                messages = [{"role": "system", "content": system}] if system else []
                messages.append({"role": "user", "content": prompt})
                body = {
                    "model": model,
                    "messages": messages,
                    "max_tokens": max_tokens,
                    "temperature": temperature,
                    **(extra_body or {}),
                }
                out.append(_post_one(client, url, body, i))
        return out

    return generate


def _post_one(client: httpx.Client, url: str, body: dict[str, Any], index: int) -> str:
    try:
        response = client.post(url, json=body)
    except httpx.TimeoutException as exc:
        raise GenerationError(f"POST {url} (prompt {index}) timed out: {exc}") from exc
    except httpx.HTTPError as exc:
        raise GenerationError(f"POST {url} (prompt {index}) failed: {exc}") from exc
    if response.status_code != 200:
        raise GenerationError(
            f"POST {url} (prompt {index}) returned HTTP {response.status_code}: {response.text[:300]}"
        )
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise GenerationError(
            f"POST {url} (prompt {index}): reply is not a chat completion "
            f"(expected choices[0].message.content): {response.text[:300]}"
        ) from exc
    # Some servers send null content for an empty completion; that is an empty answer.
    return "" if content is None else str(content)


def local_generator(
    model_ref: str | LoadedLM | None = None,
    *,
    max_new_tokens: int = 48,
    temperature: float = 0.0,
    batch_size: int = 8,
    system: str | None = None,
    adapter: str | Path | None = None,
    seed: int | None = None,
    device: str | None = None,
    cache_dir: str | Path | None = None,
) -> Generate:
    """A generator running a causal LM in-process via ``monitor.llm``.

    ``model_ref`` is a Hugging Face id, a local directory or .gguf file, None for driftloop's
    bundled default (SmolLM2-135M-Instruct), or an already loaded ``LoadedLM`` (so retraining
    can probe a model it holds; ``adapter`` then selects a LoRA adapter). A reference is
    loaded now, so a bad one fails here rather than mid-run.
    """
    from monitor.llm import generate_chat, load_causal_lm

    if model_ref is None or isinstance(model_ref, str):
        loaded = load_causal_lm(model_ref, device=device, cache_dir=cache_dir)
    else:
        loaded = model_ref

    def generate(prompts: list[str]) -> list[str]:
        return list(
            generate_chat(
                loaded,
                prompts,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                batch_size=batch_size,
                system=system,
                adapter=adapter,
                seed=seed,
            )
        )

    return generate
