"""CPU per event of each stage of the collector's hot path, in one process, on bench/ingest.py's traffic.

    python bench/ingest_stages.py [--batches 20] [--batch-size 2000]   (DRIFTLOOP_PARTITION_INTERVAL=off: plain)

Times (process CPU, `time.process_time`, so other jobs on the machine move it little) each stage the route runs
for a pre-encoded gzip batch: inflating, msgspec parsing and validation, PII redaction (the default detectors),
building rows, and the write (client CPU of `ingest_events` + commit), plus the Postgres backend's CPU for the
write (from /proc: the server must run on this machine). HTTP, routing and auth are not here: bench/ingest.py
prints the collector process's whole CPU per event, and the difference is theirs.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cost_per_event import cpu_seconds
from bench.ingest_load import batch_template, bench_texts, fill
from monitor import migrations
from monitor.api.body import decode_content
from monitor.db import make_engine, utcnow
from monitor.ingest.fastparse import parse_events
from monitor.ingest.service import _event_row, ingest_events
from monitor.privacy.ingest import redact_batch
from monitor.privacy.policy import project_privacy
from monitor.projects.service import create_key, get_project
from monitor.schemas import Limits
from monitor.settings import Settings
from tests.support.services import drop_database, recreate_database

ADMIN = os.environ.get("DRIFTLOOP_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=2000)
    args = ap.parse_args()
    n, size = args.batches * args.batch_size, args.batch_size
    texts = bench_texts(0, False)
    pieces = batch_template(texts, 0, size)
    bodies = [gzip.compress(fill(pieces, [b'"s-%d-%d"' % (k, j) for j in range(size)]), compresslevel=1)
              for k in range(args.batches)]
    settings = Settings()
    limits = Limits(settings.max_text_chars, settings.max_metadata_bytes, settings.max_batch_events)

    name = f"driftloop_bench_stages_{os.getpid()}"
    url = recreate_database(ADMIN, name)
    try:
        migrations.upgrade(url)
        engine = make_engine(url)
        with Session(engine) as s:
            create_key(s, "bench", scopes="ingest")
            s.commit()
            project = get_project(s, "bench")
            parted = s.execute(text("SELECT count(*) FROM pg_partitioned_table")).scalar()
        privacy = project_privacy(settings, project.id, project.config)
        stages = dict.fromkeys(("inflate", "parse+validate", "redact", "build rows", "write (client)",
                                "write (Postgres)"), 0.0)
        with Session(engine) as s:
            backend = s.execute(text("SELECT pg_backend_pid()")).scalar()
            s.commit()

            def pg_cpu() -> float:
                return cpu_seconds(int(backend))

            clock = time.process_time
            for body in bodies:
                t0 = clock()
                raw = decode_content(body, "gzip", settings.max_body_bytes)
                t1 = clock()
                events = parse_events(raw, limits)
                assert events is not None
                t2 = clock()
                events = redact_batch(privacy, "events", events)
                t3 = clock()
                now = utcnow()
                [_event_row(project.id, e, now) for e in events]
                t4 = clock()
                p0 = pg_cpu()
                counts = ingest_events(s, project.id, events)
                s.commit()
                t5 = clock()
                p1 = pg_cpu()
                assert counts.accepted == size
                for k, v in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, p1 - p0), strict=True):
                    stages[k] += v
        engine.dispose()
    finally:
        drop_database(ADMIN, name)
    print(f"{'partitioned' if parted else 'plain'} storage, {n:,} events in batches of {size:,}, "
          f"load {os.getloadavg()[0]:.1f}; CPU us/event:")
    for k, v in stages.items():
        print(f"  {k:<18} {v / n * 1e6:6.2f}")
    print(f"  {'total':<18} {sum(stages.values()) / n * 1e6:6.2f}  (write (client) includes building rows again)")


if __name__ == "__main__":
    main()
