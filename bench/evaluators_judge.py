"""Benchmark of the injection evaluator and the LLM judge (issue #21), one command:

    python bench/evaluators_judge.py [--judge-model smollm2|tiny|none] [--judge-items 12] [--max-tokens 40]

Injection: precision / recall / ROC AUC (DeLong 95% interval) on the held-out (template-grouped) test split of
bench/data/evaluators/injection_prompts.jsonl, which the shipped head never saw; false-flag rate per benign
source and recall per attack source; texts/s with the embedding included and head-only (given stored vectors),
beside bare MiniLM encoding measured in the same run (the ratio is what carries across machines).

Judge: `driftloop serve-model`'s app on a real socket (uvicorn, a migrated SQLite file) serving SmolLM2-135M
(or the tiny random model built for tests), judged through JudgeEvaluator: calls/s, p50/p95 latency, tokens per
call, and the share of replies that parsed as a verdict (a 135M model is a stand-in for vLLM/Ollama here).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.evaluators.agreement import agreement
from monitor.evaluators.base import EvalItem

DATA = Path(__file__).resolve().parent / "data" / "evaluators" / "injection_prompts.jsonl"


def injection_bench() -> None:
    from monitor.embeddings import get_embedder
    from monitor.evaluators.injection import InjectionEvaluator

    rows = [json.loads(x) for x in DATA.read_text(encoding="utf-8").split("\n") if x]
    test = [r for r in rows if r["split"] == "test"]
    texts = [r["text"] for r in test]
    y = np.array([r["label"] for r in test], dtype=bool)
    ev = InjectionEvaluator()
    embedder = get_embedder(None)
    embedder.encode(texts[:16])  # load and warm up
    t = time.perf_counter()
    vecs = embedder.encode(texts).astype(np.float16)
    encode_s = time.perf_counter() - t
    items = [EvalItem(i, txt, None, None, None, v, None) for i, (txt, v) in enumerate(zip(texts, vecs, strict=True))]
    t = time.perf_counter()
    results = ev.evaluate(items)
    head_s = time.perf_counter() - t
    p = np.array([r.value for r in results], dtype=float)
    flag = np.array([bool(r.label) for r in results])
    # agreement() with "good" = attack gives the AUC of the score for attacks, with its DeLong interval.
    a = agreement(p, y, good_when_high=True, threshold=ev.threshold)
    tp, fp = int((flag & y).sum()), int((flag & ~y).sum())
    print(f"## injection (held-out test split: {int(y.sum())} attacks, {int((~y).sum())} benign; "
          f"threshold {ev.threshold:.3f} from the head's validation split)")
    print(f"precision {tp / max(1, tp + fp):.3f}  recall {tp / max(1, int(y.sum())):.3f}  "
          f"ROC AUC {a.auc:.4f} [{a.auc_low:.4f}, {a.auc_high:.4f}]  balanced accuracy {a.balanced_accuracy:.3f}")
    by_source: dict[str, list[bool]] = defaultdict(list)
    for r, f in zip(test, flag, strict=True):
        by_source[f"{'attack' if r['label'] else 'benign'} {r['source']}"].append(bool(f))
    for k in sorted(by_source):
        v = by_source[k]
        what = "recall" if k.startswith("attack") else "false flags"
        print(f"  {k:42s} n={len(v):4d}  {what} {np.mean(v):.3f}")
    n = len(texts)
    print(f"texts/s: MiniLM encode alone {n / encode_s:.0f}; head on stored vectors {n / head_s:.0f}; "
          f"end to end (encode + head) {n / (encode_s + head_s):.0f} (ratio to encode "
          f"{encode_s / (encode_s + head_s):.2f})")


def judge_bench(model: str, n_items: int, max_tokens: int) -> None:
    import uvicorn

    from monitor import migrations
    from monitor.db import make_engine, session_factory
    from monitor.evaluators.judge.client import JudgeClient
    from monitor.evaluators.judge.evaluator import JudgeEvaluator, _Cache
    from monitor.llm import load_causal_lm
    from monitor.projects.service import get_or_create_project
    from monitor.settings import Settings
    from retrain.serving.server import create_model_server

    with tempfile.TemporaryDirectory() as tmp:
        base_model = None
        if model == "tiny":
            sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
            from tests.support.tiny_model import build_tiny_model_dir

            base_model = str(build_tiny_model_dir(Path(tmp) / "tiny"))
        t = time.perf_counter()
        lm = load_causal_lm(base_model, device="cpu")
        load_s = time.perf_counter() - t
        url = f"sqlite:///{tmp}/bench.db"
        migrations.upgrade(url)
        factory = session_factory(make_engine(url))
        with factory() as s:
            get_or_create_project(s, "bench")
            s.commit()
        settings = Settings(database_url=url, data_dir=Path(tmp), base_model=base_model,
                            model_server_max_tokens=max(max_tokens, 16))
        app = create_model_server(settings, project="bench", factory=factory, lm=lm, seed=0)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)  # waiting for the server thread to bind; bounded by uvicorn's own start-up
        rows = [json.loads(x) for x in DATA.read_text(encoding="utf-8").split("\n") if x]
        prompts = [r["text"] for r in rows if r["source"] == "clinc150/queries" and r["split"] == "test"][:n_items]
        answers = ["I can help with that: open the app, choose the account, then follow the steps shown.",
                   "Sorry, I don't know."]
        items = [EvalItem(i, q, answers[i % 2], None, None, None, None) for i, q in enumerate(prompts)]
        client = JudgeClient(f"http://127.0.0.1:{port}/v1", "champion", max_tokens=max_tokens, timeout_s=600,
                             max_attempts=1)
        ev = JudgeEvaluator(client, rubric="helpfulness", cache=_Cache(), window_deadline_s=3600)
        t = time.perf_counter()
        try:
            results = ev.evaluate(items)
        except Exception as exc:  # every reply unusable: still report the timings
            results = getattr(exc, "results", [])
            print(f"(evaluator failed: {str(exc)[:160]})")
        wall = time.perf_counter() - t
        server.should_exit = True
        thread.join(timeout=10)
    lat = np.array(ev.stats.latencies_s)
    parsed = sum(r.value is not None for r in results)
    print(f"## LLM judge against serve-model ({model}, loaded in {load_s:.0f}s; helpfulness rubric, "
          f"max_tokens {max_tokens}, sequential)")
    per_call = ev.stats.tokens / max(1, ev.stats.calls)
    p50, p95 = (np.percentile(lat, 50), np.percentile(lat, 95)) if lat.size else (float("nan"), float("nan"))
    print(f"{ev.stats.calls} calls in {wall:.1f}s: {ev.stats.calls / wall:.3f} calls/s; latency p50 {p50:.2f}s "
          f"p95 {p95:.2f}s; {per_call:.0f} tokens/call; verdicts parsed {parsed}/{len(items)}")
    for r in results[:4]:
        print("  ", (r.explanation or r.error or "")[:140].replace("\n", " "))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--judge-model", choices=["smollm2", "tiny", "none"], default="smollm2")
    ap.add_argument("--judge-items", type=int, default=12)
    ap.add_argument("--max-tokens", type=int, default=40)
    ap.add_argument("--skip-injection", action="store_true")
    args = ap.parse_args()
    print(f"# bench/evaluators_judge.py, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    if not args.skip_injection:
        injection_bench()
    if args.judge_model != "none":
        judge_bench(args.judge_model, args.judge_items, args.max_tokens)


if __name__ == "__main__":
    main()
