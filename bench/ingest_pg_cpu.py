"""Postgres's CPU per event of the collector's write: `ingest_events` with bench/ingest.py's traffic, N events in
2,000-event batches, each committed, on a fresh database; the backend's utime+stime read from /proc (so the
Postgres server must run on this machine). Less sensitive to other jobs than wall-clock throughput.

    python bench/ingest_pg_cpu.py [N=30000]     (DRIFTLOOP_PARTITION_INTERVAL=off for plain tables)
"""

import os
import sys
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cost_per_event import cpu_seconds
from bench.ingest_load import bench_texts
from monitor import migrations
from monitor.db import make_engine
from monitor.ingest.service import ingest_events
from monitor.projects.service import create_key, get_project
from monitor.schemas import EventIn
from tests.support.services import drop_database, recreate_database

N = int(sys.argv[1]) if len(sys.argv) > 1 else 30000
ADMIN = os.environ.get("DRIFTLOOP_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
name = f"s7_22_pgcpu_{os.getpid()}"
url = recreate_database(ADMIN, name)
try:
    migrations.upgrade(url)
    engine = make_engine(url)
    texts = bench_texts(0, False)
    with Session(engine) as s:
        create_key(s, "bench", scopes="ingest")
        s.commit()
        pid = get_project(s, "bench").id
        parted = s.execute(text("SELECT count(*) FROM pg_partitioned_table")).scalar()
    batches = [[EventIn(event_id=f"e{i}", prompt=texts[i % len(texts)], response="Happy to help with that.",
                        model="smollm2-135m", model_version="v1", latency_ms=120.0, prompt_tokens=12,
                        completion_tokens=6, metadata={"locale": "en"}) for i in range(lo, lo + 2000)]
               for lo in range(0, N, 2000)]
    with Session(engine) as s:
        backend = s.execute(text("SELECT pg_backend_pid()")).scalar()
        s.commit()

        def cpu() -> float:
            return cpu_seconds(int(backend))
        c0, w0 = cpu(), time.perf_counter()
        for b in batches:
            ingest_events(s, pid, b)
            s.commit()
        c1, w1 = cpu(), time.perf_counter()
    print(f"{'partitioned' if parted else 'plain'}: backend CPU {(c1 - c0) / N * 1e6:.1f} us/event, "
          f"wall {(w1 - w0) / N * 1e6:.1f} us/event, {N} events, load {os.getloadavg()[0]:.1f}")
    engine.dispose()
finally:
    drop_database(ADMIN, name)
