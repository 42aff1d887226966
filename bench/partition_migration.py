"""How long `driftloop partitions convert` takes to convert an existing database to partitions, per million rows.

    python bench/partition_migration.py [--events 1000000] [--days 60]

A fresh database is migrated to 0013 (plain tables), filled by SQL with `--events` events spread over `--days`
days, one embedding and one score per event and one feedback item per ten events, vacuumed, and migrated to
head (which leaves a database that holds events plain); then `driftloop partitions convert --yes` runs in its
own process with DRIFTLOOP_PARTITION_INTERVAL=day, timed. Prints the command's output (rows per table), its
wall time, seconds per million events (all four tables included) and the database size before and after.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from retention import drop, recreate, size  # bench/retention.py

from monitor import migrations
from monitor.settings import reset_settings_cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=60)
    args = parser.parse_args()
    name = "driftloop_bench_partition_migration"
    url = recreate(name)
    try:
        os.environ["DRIFTLOOP_PARTITION_INTERVAL"] = "off"
        reset_settings_cache()
        migrations.upgrade(url, "0013_judge")
        span = args.days * 86400.0 / args.events
        started = time.monotonic()
        with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
            conn.execute("INSERT INTO projects (slug, name, config, created_at) VALUES ('b', 'b', '{}', now())")
            conn.execute(
                "INSERT INTO events (project_id, client_event_id, ts, received_at, model, prompt, response, "
                f"latency_ms) SELECT 1, 'e-' || g, now() - make_interval(secs => g * {span}), now(), 'gpt-x', "
                "'How do I reset my password for account ' || g || '?', 'Open settings, then security.', g % 2000 "
                f"FROM generate_series(1, {args.events}) g")
            conn.execute("INSERT INTO event_vectors (event_id, field, model_key, dim, vector) "
                         "SELECT id, 'prompt', 'minilm', 384, decode(repeat('00', 768), 'hex') FROM events")
            conn.execute("INSERT INTO event_scores (event_id, field, scorer, score) "
                         "SELECT id, 'response', 'toxicity', 0.01 FROM events")
            conn.execute("INSERT INTO feedback (project_id, client_feedback_id, event_client_id, ts, received_at, "
                         "score) SELECT 1, 'f-' || id, client_event_id, ts, now(), 1 FROM events WHERE id % 10 = 0")
            conn.execute("VACUUM ANALYZE")
        print(f"filled in {time.monotonic() - started:.0f} s; database {size(url)}", flush=True)
        os.environ["DRIFTLOOP_PARTITION_INTERVAL"] = "day"
        reset_settings_cache()
        migrations.upgrade(url)  # holds events: stays plain
        env = {**os.environ, "DRIFTLOOP_DATABASE_URL": url, "DRIFTLOOP_PARTITION_INTERVAL": "day"}
        t0 = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "monitor.cli", "partitions", "convert", "--yes"], env=env,
                              capture_output=True, text=True)
        took = time.monotonic() - t0
        print(done.stdout[-3000:], done.stderr[-3000:], flush=True)
        if done.returncode != 0:
            raise SystemExit(f"FAILED: driftloop partitions convert exited {done.returncode}")
        print(f"converted {args.events:,} events (+ as many embeddings and scores, {args.events // 10:,} feedback) "
              f"in {took:.1f} s = {took / (args.events / 1e6):.1f} s per million events; database {size(url)}")
    finally:
        drop(name)


if __name__ == "__main__":
    main()
