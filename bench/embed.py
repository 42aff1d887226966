"""Embedding throughput: driftloop's pipeline (read texts from the database, encode, store float16 vectors)
against a bare `SentenceTransformer.encode` on the same texts, and proof that a recompute embeds nothing.

    python bench/embed.py [--n 2000] [--database-url sqlite:///...]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

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
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

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


if __name__ == "__main__":
    main()
