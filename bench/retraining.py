"""LoRA training and generation speed of the default offline model (SmolLM2-135M-Instruct) on this machine.

Prints: model load time (GGUF conversion vs safetensors cache), wall time and peak RSS of LoRA training
per 100 examples (r=8, q_proj/v_proj, batch 8), response NLL before/after, and greedy generation
tokens/s at batch 1 and batch 8; then the reference model server (`driftloop serve-model`) through HTTP:
completion tokens/s and latency of sequential chat requests, answered by the base (v0) and by the trained
adapter (v1, attached to the same base), and with 4 concurrent clients.

    python bench/retraining.py [--examples 100] [--threads N] [--skip-cold] [--gen-prompts 16]
                               [--server-requests 8] [--skip-server]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from monitor.llm import LoadedLM, generate_chat, load_causal_lm, sequence_nll
from retrain.training.lora import LoraConfigSpec, TrainExample, train_lora
from retrain.training.memory import current_rss_mb

TOPICS = ["password reset", "refund", "delivery", "invoice", "subscription", "discount", "account", "order"]
TEMPLATES = [
    (
        "How do I handle a {t} request from a customer?",
        "Check the {t} policy, confirm the details, and reply within a day.",
    ),
    (
        "Summarise our {t} rules in one sentence.",
        "For any {t}, verify the account first and log every change.",
    ),
    (
        "A user is angry about a {t}. What should I say?",
        "Apologise, explain the {t} steps clearly, and offer a follow-up.",
    ),
    ("Write a short note about {t} number {i}.", "Note {i}: the {t} was reviewed and closed without issues."),
]
GEN_PROMPTS = [
    "Explain what a refund policy is.",
    "Write two sentences about the ocean.",
    "Give three tips for writing clear emails.",
    "What is machine learning?",
    "Describe a quiet morning in a small town.",
    "Why do people keep a budget?",
    "List some uses of a spreadsheet.",
    "What makes customer support good?",
]


def examples(n: int) -> list[TrainExample]:
    out = []
    for i in range(n):
        prompt, response = TEMPLATES[i % len(TEMPLATES)]
        topic = TOPICS[(i // len(TEMPLATES)) % len(TOPICS)]
        out.append(TrainExample(prompt.format(t=topic, i=i), response.format(t=topic, i=i)))
    return out


def generation_rate(lm: LoadedLM, batch_size: int, n_prompts: int, max_new_tokens: int) -> tuple[float, int]:
    prompts = [GEN_PROMPTS[i % len(GEN_PROMPTS)] for i in range(n_prompts)]
    generate_chat(lm, prompts[:1], max_new_tokens=4)  # warm-up
    started = time.perf_counter()
    replies = generate_chat(lm, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
    seconds = time.perf_counter() - started
    # Only real reply tokens count, not the padding of rows that stopped early.
    tokens = sum(len(lm.tokenizer(r, add_special_tokens=False)["input_ids"]) + 1 for r in replies)
    return tokens / seconds, tokens


def mean_nll(scores: list[tuple[float, int]]) -> float:
    return sum(s for s, _ in scores) / sum(n for _, n in scores)


def server_rate(lm: LoadedLM, adapter_dir: Path, tmp: str, n_requests: int, max_tokens: int) -> list[tuple[str, str]]:
    """Serve `lm` over real HTTP (uvicorn on a free port) and time chat completions as v0 and as v1."""
    import socket
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    import uvicorn

    from monitor import migrations
    from monitor.db import make_engine, session_factory
    from monitor.projects.service import get_or_create_project
    from monitor.settings import Settings
    from retrain.registry.service import ensure_champion, promote, register_challenger
    from retrain.serving.server import create_model_server

    url = f"sqlite:///{tmp}/bench.db"
    migrations.upgrade(url)
    factory = session_factory(make_engine(url))
    with factory() as s:
        pid = get_or_create_project(s, "bench").id
        ensure_champion(s, pid, "smollm2")
        s.commit()
    settings = Settings(database_url=url, data_dir=Path(tmp), model_server_reload_seconds=0.0,
                        model_server_max_tokens=max(max_tokens, 16))
    app = create_model_server(settings, project="bench", factory=factory, lm=lm)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)  # waiting for the server thread to bind; bounded by uvicorn's own start-up
    rows: list[tuple[str, str]] = []
    endpoint = f"http://127.0.0.1:{port}/v1/chat/completions"

    def ask(client: httpx.Client, i: int) -> int:
        body = {"model": "driftloop", "max_tokens": max_tokens,
                "messages": [{"role": "user", "content": GEN_PROMPTS[i % len(GEN_PROMPTS)]}]}
        reply = client.post(endpoint, json=body, timeout=600)
        reply.raise_for_status()
        return int(reply.json()["usage"]["completion_tokens"])

    def timed(label: str, workers: int) -> None:
        with httpx.Client() as client:
            ask(client, 0)  # warm-up (attaches the adapter on the first request after a swap)
            started = time.perf_counter()
            with ThreadPoolExecutor(workers) as pool:
                tokens = sum(pool.map(lambda i: ask(client, i), range(n_requests)))
            seconds = time.perf_counter() - started
        rows.append((f"model server over HTTP, {label}",
                     f"{tokens / seconds:.1f} tokens/s, {n_requests / seconds:.2f} requests/s "
                     f"({n_requests} requests, {tokens} tokens, {seconds:.1f} s)"))

    try:
        timed("v0 (base), 1 client", 1)
        with factory() as s:
            fields = {"base_model": "smollm2", "adapter_path": str(adapter_dir), "gates_passed": True,
                      "gate_results": [], "dataset_stats": {}, "hyperparams": {}, "train_losses": [],
                      "eval_results": {}, "trigger": {"kind": "bench"}}
            register_challenger(s, pid, actor="bench", job_id=None, fields=fields, gate_summary="bench")
            promote(s, pid, "v1", actor="bench", reason="bench")
            s.commit()
        timed("v1 (LoRA adapter), 1 client", 1)
        timed("v1 (LoRA adapter), 4 clients", 4)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--skip-cold", action="store_true", help="skip timing the GGUF conversion")
    parser.add_argument("--gen-prompts", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--server-requests", type=int, default=8)
    parser.add_argument("--skip-server", action="store_true", help="skip the model-server HTTP figures")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="driftloop-bench-") as tmp:
        if not args.skip_cold:
            cold = load_causal_lm(None, cache_dir=tmp)
            rows.append(("load, first (GGUF -> safetensors cache)", f"{cold.load_seconds:.1f} s"))
            del cold
            lm = load_causal_lm(None, cache_dir=tmp)
        else:
            lm = load_causal_lm(None)
        rows.append((f"load, {'from cache' if lm.from_cache else 'converted'}", f"{lm.load_seconds:.1f} s"))

        for batch_size in (1, 8):
            rate, tokens = generation_rate(lm, batch_size, args.gen_prompts, args.max_new_tokens)
            rows.append((f"generation, greedy, batch {batch_size}", f"{rate:.1f} tokens/s ({tokens} tokens)"))

        train = examples(args.examples)
        pairs = [(ex.prompt, ex.response) for ex in train]
        before = mean_nll(sequence_nll(lm, pairs))
        rss_before = current_rss_mb()
        spec = LoraConfigSpec()  # r=8, alpha=16, q_proj/v_proj, batch 8, lr 2e-4, 1 epoch
        result = train_lora(lm, train, spec, os.path.join(tmp, "adapter"))
        after = mean_nll(sequence_nll(lm, pairs, adapter=result.adapter_dir))
        per_100 = result.train_seconds * 100 / len(train)
        rows.append(
            (f"LoRA train, {len(train)} examples, {result.steps} steps", f"{result.train_seconds:.1f} s")
        )
        rows.append(
            (
                "LoRA train, per 100 examples",
                f"{per_100:.1f} s ({result.train_seconds / result.steps:.2f} s/step)",
            )
        )
        rows.append(
            (
                "LoRA train, peak RSS (process)",
                f"{result.peak_rss_mb:.0f} MiB (RSS before: {rss_before:.0f} MiB)",
            )
        )
        rows.append(("LoRA train, first/last step loss", f"{result.losses[0]:.3f} / {result.losses[-1]:.3f}"))
        rows.append(("train-set NLL/token base -> adapter", f"{before:.3f} -> {after:.3f}"))
        if not args.skip_server:
            rows.extend(server_rate(lm, result.adapter_dir, tmp, args.server_requests, args.max_new_tokens))

    load1, load5, _ = os.getloadavg()
    print(
        f"driftloop bench/retraining.py  {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {lm.device}, "
        f"load avg {load1:.1f}/{load5:.1f}"
    )
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


if __name__ == "__main__":
    main()
