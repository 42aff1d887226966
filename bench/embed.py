"""Embedding throughput: driftloop's pipeline (read texts from the database, encode, store float16 vectors)
against a bare `SentenceTransformer.encode` on the same texts, and proof that a recompute embeds nothing; then the
ONNX backends (float32 and int8, monitor/onnx_embeddings.py) against the same bare encode in the same run, their
cosine to the float32 vectors on every query of a public intent sample, and the drift decisions with each.

    python bench/embed.py [--n 2000] [--database-url sqlite:///...] [--onnx-only] [--drift-trials 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor import migrations
from monitor.db import make_engine
from monitor.demo.traffic import TOPICS, prompts
from monitor.embeddings import get_embedder
from monitor.ingest.service import ingest_events
from monitor.models import Event
from monitor.pipeline.vectors import ensure_vectors
from monitor.projects.service import get_or_create_project
from monitor.schemas import EventIn


def unique_texts(n: int) -> list[str]:
    out: dict[str, None] = {}
    seed = 0
    while len(out) < n:
        for topic in TOPICS:
            for t in prompts(topic, 200, seed):
                out.setdefault(t, None)
        seed += 1
    return list(out)[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--onnx-only", action="store_true", help="skip the pipeline comparison")
    ap.add_argument("--drift-trials", type=int, default=5, help="trials per drift cell (0: skip the drift check)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not args.onnx_only:
        pipeline_comparison(args)
    onnx_comparison(args)


def pipeline_comparison(args: argparse.Namespace) -> None:
    texts = unique_texts(args.n)
    emb = get_embedder(batch_size=args.batch_size)
    emb.encode(texts[:64])  # warm-up: first call pays one-off allocation costs

    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    migrations.upgrade(url)
    engine = make_engine(url)

    def bare_once() -> float:
        t = time.perf_counter()
        emb._model.encode(texts, batch_size=args.batch_size, convert_to_numpy=True, normalize_embeddings=True)
        return time.perf_counter() - t

    def pipeline_once() -> tuple[float, int, int, float]:
        with Session(engine) as s:
            project = get_or_create_project(s, f"bench-{time.time_ns()}")
            ingest_events(s, project.id, [EventIn(event_id=f"b{i}", prompt=t) for i, t in enumerate(texts)])
            s.commit()
            ids = list(s.scalars(select(Event.id).where(Event.project_id == project.id)))
        with Session(engine) as s:
            t = time.perf_counter()
            embedded = ensure_vectors(s, ids, "prompt", emb.model_key, emb.encode)
            s.commit()
            took = time.perf_counter() - t
        with Session(engine) as s:
            t = time.perf_counter()
            again = ensure_vectors(s, ids, "prompt", emb.model_key, emb.encode)
            return took, embedded, again, time.perf_counter() - t

    # Alternate the two, so a burst of load elsewhere on the machine hits both alike; report medians.
    bares, pipes = [], []
    for r in range(args.rounds):  # ABBA order: neither side always runs first
        if r % 2:
            pipes.append(pipeline_once())
            bares.append(bare_once())
        else:
            bares.append(bare_once())
            pipes.append(pipeline_once())
    bare = statistics.median(bares)
    pipeline = statistics.median(p[0] for p in pipes)
    embedded, again, recompute = pipes[-1][1], pipes[-1][2], pipes[-1][3]

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, device {emb.device}, "
          f"database {url.split(':')[0]}")
    print(f"{'texts':>8} {'bare encode/s':>14} {'pipeline/s':>11} {'ratio':>7} {'recompute embeds':>17} "
          f"{'recompute s':>12}")
    print(f"{len(texts):>8} {len(texts) / bare:>14.0f} {embedded / pipeline:>11.0f} {bare / pipeline:>7.1%} "
          f"{again:>17} {recompute:>12.3f}")


def intent_sample(step: int = 5) -> list[str]:
    """Every `step`-th query of the public intent extracts shipped in bench/data (CLINC150 and HWU64)."""
    texts: list[str] = []
    for name in ("clinc150_extract.tsv", "hwu64_extract.tsv"):
        lines = (Path(__file__).parent / "data" / name).read_text(encoding="utf-8").splitlines()
        texts += [line.split("\t")[0] for line in lines if line]
    return texts[::step]


def onnx_comparison(args: argparse.Namespace) -> None:
    """ONNX float32 and int8 vs bare sentence-transformers on the same texts, same run, alternating rounds."""
    cache = Path(tempfile.gettempdir()) / "driftloop-bench-onnx"
    torch_emb = get_embedder(device="cpu", batch_size=args.batch_size)
    t = time.perf_counter()
    backends = {b: get_embedder(device="cpu", batch_size=args.batch_size, backend=b, cache_dir=cache)
                for b in ("onnx", "onnx-int8")}
    print(f"\nONNX models built or loaded from {cache} in {time.perf_counter() - t:.1f} s")
    texts = unique_texts(args.n)
    for e in (torch_emb, *backends.values()):
        e.encode(texts[:64])  # warm-up
    timings: dict[str, list[float]] = {"torch": [], **{b: [] for b in backends}}
    order = ["torch", *backends]
    for r in range(args.rounds):
        for name in order if r % 2 == 0 else order[::-1]:  # ABBA: a burst of load elsewhere hits all alike
            start = time.perf_counter()
            if name == "torch":
                torch_emb._model.encode(texts, batch_size=args.batch_size, convert_to_numpy=True,
                                        normalize_embeddings=True)
            else:
                backends[name].encode(texts)
            timings[name].append(time.perf_counter() - start)
    bare = statistics.median(timings["torch"])
    sample = intent_sample()
    reference = torch_emb.encode(sample)
    print(f"load average {os.getloadavg()[0]:.1f}; {len(texts)} texts, batch {args.batch_size}, {args.rounds} rounds "
          f"(median); cosine on {len(sample)} public intent queries (CLINC150 + HWU64 extracts)")
    print(f"{'backend':>22} {'texts/s':>9} {'vs bare':>8} {'min cosine':>11} {'p1 cosine':>10} {'mean cosine':>12}")
    print(f"{'sentence-transformers':>22} {len(texts) / bare:>9.0f} {1.0:>7.2f}x {'(reference)':>11}")
    vectors = {}
    for name, emb in backends.items():
        took = statistics.median(timings[name])
        vectors[name] = emb.encode(sample)
        cos = (vectors[name] * reference).sum(axis=1)
        print(f"{name:>22} {len(texts) / took:>9.0f} {bare / took:>7.2f}x {cos.min():>11.4f} "
              f"{np.percentile(cos, 1):>10.4f} {cos.mean():>12.4f}")
    if args.drift_trials:
        drift_decisions(backends, args.drift_trials)


def drift_decisions(backends: dict[str, Any], trials: int) -> None:
    """bench/drift_power.py's cells on HWU64 with the pool embedded by each backend: same windows, same seeds."""
    from dataclasses import replace

    from bench.drift_power import cells, cyclic_windows, run_trial
    from monitor.drift.calibration import load_intent_pool, new_intent_windows

    pool = load_intent_pool("hwu64")  # float32 torch vectors
    pools = {"torch": pool, **{b: replace(pool, vectors=e.encode(list(pool.texts))) for b, e in backends.items()}}
    key = "defaults|mmd + knn, calibrated, BH at 0.01"
    print(f"\ndrift decisions (default rule: {key.split('|')[1]}), HWU64, 500 per side, {trials} trials per cell")
    print(f"{'cell':>16} " + " ".join(f"{b + ' flagged':>18}" for b in pools) + f" {'decisions differing':>20}")
    for label, share, n in cells(500, 300):
        flagged: dict[str, list[bool]] = {b: [] for b in pools}
        for t in range(trials):
            rng_seed = 1000 * t + int(100 * (share or 0.0))
            for b, p in pools.items():
                rng = np.random.default_rng(rng_seed)  # the same windows (row indices) for every backend
                if share is None:
                    ref, cur = cyclic_windows(p, n, rng, seed=t)
                else:
                    ref, cur = new_intent_windows(p, n_reference=n, n_current=n, share=share, rng=rng)
                flagged[b].append(bool(run_trial(ref, cur, seed=t, timings=defaultdict(list))[key]))
        differ = {b: sum(x != y for x, y in zip(flagged[b], flagged["torch"], strict=True)) for b in backends}
        print(f"{label:>16} " + " ".join(f"{sum(v):>12}/{trials:<5}" for v in flagged.values())
              + f" {', '.join(f'{b} {d}' for b, d in differ.items()):>20}")


if __name__ == "__main__":
    main()
