"""What the `evaluators` window stage costs per 10,000 events (part of bench/evaluators.py).

Seeds one window of N events into a fresh Postgres database (prompts and responses drawn from the shipped
LLMBar extract), stores their sentence vectors first as the drift stage would, then runs the stage with each
built-in evaluator alone: once on the fresh window (scores computed and stored) and once more (a recomputation:
every score read back, nothing evaluated). Reports seconds and the cost per 10,000 events, next to the time of
a bare read of the window (load_window) in the same run as the baseline.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from bench.faults.common import fresh_database, machine, servers
from monitor.db import make_engine
from monitor.ingest.service import ingest_events
from monitor.models import Project
from monitor.pipeline.stages import run_stage
from monitor.pipeline.window_data import load_window
from monitor.projects.service import get_or_create_project
from monitor.schemas import EventIn
from monitor.settings import environment

WINDOW_START = datetime(2026, 11, 30, tzinfo=UTC)
KINDS = ("refusal", "degenerate", "pii_leak", "language_mismatch", "relevance")
PAIRS = Path(__file__).resolve().parent / "data" / "evaluators" / "llmbar_pairs.jsonl"


def _seed(session: Session, n: int) -> int:
    pairs = [json.loads(line) for line in PAIRS.open(encoding="utf-8")]
    project = get_or_create_project(session, "evaluators-bench")
    session.flush()
    batch: list[EventIn] = []
    for i in range(n):
        p = pairs[i % len(pairs)]
        batch.append(EventIn(event_id=f"e{i}", timestamp=WINDOW_START + timedelta(microseconds=i * 3_500_000_000 // n),
                             prompt=p["prompt"][:400], response=p["response"][:600], latency_ms=100.0))
        if len(batch) == 5000 or i == n - 1:
            ingest_events(session, project.id, batch)
            session.commit()
            batch = []
    return project.id


def _timed(engine: Engine, pid: int, kind: str | None) -> float:
    with Session(engine) as s:
        if kind is not None:
            project = s.get(Project, pid)
            assert project is not None
            project.config = {"evaluators": [{"kind": kind, "max_per_window": 200_000}]}
            s.commit()
        started = time.perf_counter()
        if kind is None:
            load_window(s, pid, WINDOW_START, WINDOW_START + timedelta(hours=1))
        else:
            run_stage(s, "evaluators", pid, WINDOW_START)
        s.commit()
        return time.perf_counter() - started


def stage_cost(n: int) -> None:
    print(f"\n# evaluators stage on one window of {n:,} events (fresh Postgres; {machine()})", flush=True)
    with servers() as (admin, _redis), fresh_database(admin, "evaluators_bench") as url, \
            environment({"DRIFTLOOP_DATABASE_URL": url, "DRIFTLOOP_DEVICE": "cpu"}):
        engine = make_engine(url)
        with Session(engine) as s:
            pid = _seed(s, n)
        with Session(engine) as s:  # the drift stage's vectors, so relevance reads them as in production
            from monitor.embeddings import get_embedder
            from monitor.models import Event
            from monitor.pipeline.vectors import ensure_vectors

            ids = [e for (e,) in s.query(Event.id).filter(Event.project_id == pid)]
            embedder = get_embedder(None, device="cpu")
            for field in ("prompt", "response"):
                ensure_vectors(s, ids, field, embedder.model_key, embedder.encode)
            s.commit()
        baseline = min(_timed(engine, pid, None) for _ in range(3))
        print("| evaluator | first computation (s) | per 10,000 events (s) | recomputation (s) | "
              "per 10,000 events (s) |")
        print("|---|---:|---:|---:|---:|")
        print(f"| (baseline: reading the window) | {baseline:.2f} | {baseline * 10_000 / n:.2f} |  |  |")
        for kind in KINDS:
            first = _timed(engine, pid, kind)
            again = _timed(engine, pid, kind)
            print(f"| {kind} | {first:.2f} | {first * 10_000 / n:.2f} | {again:.2f} | {again * 10_000 / n:.2f} |",
                  flush=True)
        engine.dispose()
