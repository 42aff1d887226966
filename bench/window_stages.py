"""Worker capacity: how long each window stage takes on a window of N events, first and on recomputation.

    python bench/window_stages.py [--events 300000] [--segments 3]

Seeds one 5-minute window of `--events` events (demo prompts, `--segments` locales) into a fresh Postgres
database through the ingest service, then runs the `ops`, `drift` and `safety` stages in this process, each
in its own transaction as a worker would: once on the fresh window (embeds and scores its samples) and once
more on the unchanged window (a recomputation: everything is stored, nothing is embedded or scored twice).
Then the safety stage again with sampling off (`safety_max_samples` = the window size), as the reference: that
is what scoring every event costs. Reports seconds and window events per second for each; a worker keeps up
with a rate when one recomputation of a full window takes less than the window's length.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, func, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from bench.faults.common import fresh_database, machine, servers  # noqa: E402
from monitor.db import make_engine  # noqa: E402
from monitor.demo.traffic import TOPICS, prompts  # noqa: E402
from monitor.ingest.service import ingest_events  # noqa: E402
from monitor.models import Project  # noqa: E402
from monitor.pipeline.models import EventScore  # noqa: E402
from monitor.pipeline.stages import run_stage  # noqa: E402
from monitor.projects.service import get_or_create_project  # noqa: E402
from monitor.schemas import EventIn  # noqa: E402
from monitor.settings import environment  # noqa: E402

WINDOW_START = datetime(2026, 11, 30, tzinfo=UTC)
STAGES = ("ops", "drift", "safety")


def seed(session: Session, n: int, segments: int) -> int:
    project = get_or_create_project(session, "window-bench")
    project.config = {"segment_keys": ["locale"]}
    session.flush()
    texts = [t for topic in TOPICS for t in prompts(topic, 200, 0)]
    locales = [f"l{k}" for k in range(segments)]
    batch: list[EventIn] = []
    for i in range(n):
        batch.append(EventIn(
            event_id=f"e{i}", timestamp=WINDOW_START + timedelta(microseconds=i * 299_000_000 // n),
            prompt=texts[i % len(texts)], response="Happy to help with that.", model="smollm2-135m",
            model_version="v1", latency_ms=100.0 + i % 50, prompt_tokens=12, completion_tokens=6,
            metadata={"locale": locales[i % segments]}))
        if len(batch) == 5000 or i == n - 1:
            ingest_events(session, project.id, batch)
            session.commit()
            batch = []
    return project.id


def timed(engine: Engine, stage: str, pid: int) -> tuple[float, int]:
    started = time.perf_counter()
    with Session(engine) as s:
        rows = run_stage(s, stage, pid, WINDOW_START)
        s.commit()
    return time.perf_counter() - started, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--segments", type=int, default=3, help="Distinct values of the `locale` segment key.")
    args = ap.parse_args()
    n = args.events
    print(f"machine: {machine()}", flush=True)
    with servers() as (admin, _redis), fresh_database(admin, "window_stages") as url, \
            environment({"DRIFTLOOP_DATABASE_URL": url, "DRIFTLOOP_DEVICE": "cpu"}):
        engine = make_engine(url)
        with Session(engine) as s:
            t = time.perf_counter()
            pid = seed(s, n, args.segments)
            print(f"seeded {n:,} events in one window in {time.perf_counter() - t:.1f} s", flush=True)
        timed(engine, "ops", pid)  # warm the caches (imports, the embedding model) outside the figures
        print(f"{'stage':<36}{'seconds':>10}{'events/s':>12}{'rows':>6}")
        for label in ("first computation", "recomputation"):
            for stage in STAGES:
                seconds, rows = timed(engine, stage, pid)
                print(f"{stage + ' (' + label + ')':<36}{seconds:>10.1f}{n / seconds:>12,.0f}{rows:>6}", flush=True)
        with Session(engine) as s:
            project = s.scalars(select(Project).where(Project.id == pid)).one()
            project.config = {**project.config, "safety_max_samples": n}
            s.commit()
        for label in ("every event scored", "every event scored, recomputation"):
            seconds, rows = timed(engine, "safety", pid)
            print(f"{'safety (' + label + ')':<36}{seconds:>10.1f}{n / seconds:>12,.0f}{rows:>6}", flush=True)
        with Session(engine) as s:
            stored = s.scalar(select(func.count()).select_from(EventScore))
        print(f"event scores stored: {stored:,} ({n:,} events, 3 scores each, when every event is scored)")
        engine.dispose()


if __name__ == "__main__":
    main()
