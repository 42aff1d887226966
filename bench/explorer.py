"""Events explorer latency on Postgres: list, filters and full-text search, p50/p95 per query.

    python bench/explorer.py [--events 10000000] [--repeats 20] [--keep]

Builds its own database (`driftloop_bench_explorer`, dropped first and, unless --keep, at the end), migrated
with the project's migrations. Loads `--events` events with COPY (secondary indexes dropped during the load
and rebuilt after it, as a bulk load would), 5% of them with feedback (a fifth of that negative), toxicity
scores for a 10% sample (as the safety stage scores a sample), and drift cluster members for the last day's
windows. Then times the explorer's own query code (`monitor.events.queries.list_events`, a 50-event page)
for each case, cycling through a few parameter values so no case is one cached plan and page.

Targets (issue #19): p95 <= 300 ms for a filtered page, <= 1 s for full-text search.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text
from sqlalchemy.orm import Session

from monitor import migrations
from monitor.db import make_engine
from monitor.demo.traffic import TOPICS, prompts
from monitor.events.filters import EventFilters, build_filters
from monitor.events.queries import list_events, toxicity_scorer_key
from monitor.models import FTS_EXPRESSION, Event, Feedback, Project
from monitor.pipeline.models import EventScore
from monitor.tables import import_all_tables

ADMIN = os.environ.get("DRIFTLOOP_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
NAME = "driftloop_bench_explorer"
T0 = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 30
TIERS = ("free", "silver", "gold")
LOCALES = ("en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "it-IT", "nl-NL", "pt-BR")
VERSIONS = ("v1", "v2", "v3", "v4")
CHUNK = 200_000
# Indexes rebuilt after the load: every secondary index of the tables loaded (the unique keys stay, as
# ingestion needs them; rebuilding them would not change the measurement).
LOADED = ("events", "feedback", "event_scores", "drift_cluster_events", "event_search")


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg", "postgresql")


def recreate(admin: str) -> str:
    with psycopg.connect(_plain(admin), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {NAME}")
    return admin.rsplit("/", 1)[0] + f"/{NAME}"


def drop(admin: str) -> None:
    with psycopg.connect(_plain(admin), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {NAME} WITH (FORCE)")


def secondary_indexes(conn: psycopg.Connection) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i JOIN pg_class c ON c.relname = i.indexname "
        "JOIN pg_index x ON x.indexrelid = c.oid WHERE i.tablename = ANY(%s) AND NOT x.indisunique "
        "AND NOT x.indisprimary", (list(LOADED),)).fetchall()
    return [(str(n), str(d)) for n, d in rows]


def rebuild(conn: psycopg.Connection, indexes: list[tuple[str, str]]) -> None:
    """Create the dropped secondary indexes again. On partitioned tables (the default) pg_indexes reads
    `CREATE INDEX ... ON ONLY feedback ...`: run as is, that makes an invalid parent index and none on the
    partitions, so every filter became a scan (negative feedback: minutes at 1M events)."""
    for _, ddl in indexes:
        conn.execute(ddl.replace(" ON ONLY ", " ON ", 1))


def load(url: str, n: int, seed: int) -> tuple[int, dict[str, float]]:
    """COPY `n` events and their feedback, scores and cluster members; returns (project id, seconds per step)."""
    rng = np.random.default_rng(seed)
    texts = [t for topic in TOPICS for t in prompts(topic, 400, seed)]
    words = sorted({w.strip("?,.!'").lower() for t in texts for w in t.split() if len(w) > 4})
    timings: dict[str, float] = {}
    with psycopg.connect(_plain(url), autocommit=True) as conn:
        pid = conn.execute("INSERT INTO projects (slug, name, config, created_at) VALUES "
                           "('bench', 'bench', '{}', now()) RETURNING id").fetchone()[0]  # type: ignore[index]
        indexes = secondary_indexes(conn)
        for name, _ in indexes:
            conn.execute(f"DROP INDEX {name}")
        start = time.perf_counter()
        seconds = rng.uniform(0, DAYS * 86400, n)
        seconds.sort()  # arrival order ~ time order, as live traffic
        with conn.cursor() as cur, cur.copy(
            "COPY events (id, project_id, client_event_id, ts, received_at, session_id, trace_id, model, "
            "model_version, prompt, response, latency_ms, prompt_tokens, completion_tokens, metadata) FROM STDIN"
        ) as copy:
            for lo in range(0, n, CHUNK):
                hi = min(lo + CHUNK, n)
                k = hi - lo
                pick = rng.integers(0, len(texts), k)
                extra = rng.integers(0, len(words), k)
                tier, loc, ver = rng.integers(0, 3, k), rng.integers(0, len(LOCALES), k), rng.integers(0, 4, k)
                sess = rng.integers(0, max(n // 6, 1), k)
                lat = rng.lognormal(5.8, 0.4, k)
                for j in range(k):
                    i = lo + j
                    ts = T0 + timedelta(seconds=float(seconds[i]))
                    prompt = f"{texts[pick[j]]} ({words[extra[j]]} #{i})"
                    copy.write_row((
                        i + 1, pid, f"e{i}", ts, ts, f"s{sess[j]}", f"t{i // 3}", "smollm2-135m",
                        VERSIONS[ver[j]], prompt, f"Thanks for asking. Here is how: {texts[pick[j]][:60]}",
                        float(lat[j]), 12, 40,
                        f'{{"tier": "{TIERS[tier[j]]}", "locale": "{LOCALES[loc[j]]}", "seats": {int(sess[j] % 9)}}}'))
        timings["copy events"] = time.perf_counter() - start

        # What the search indexer (monitor/events/indexing.py) would have written by now, in one statement as
        # migration 0015 does, with the watermark past it: searches read the GIN index, no unindexed tail.
        start = time.perf_counter()
        conn.execute(f"INSERT INTO event_search (event_id, project_id, tsv, event_ts) "
                     f"SELECT id, project_id, {FTS_EXPRESSION}, ts FROM events")
        conn.execute("INSERT INTO event_search_state (id, indexed_through, safe_through) "
                     "SELECT 1, max(id), max(id) FROM events ON CONFLICT (id) DO UPDATE SET "
                     "indexed_through = excluded.indexed_through, safe_through = excluded.safe_through")
        timings["search rows"] = time.perf_counter() - start

        start = time.perf_counter()
        fb = np.flatnonzero(rng.random(n) < 0.05)
        negative = rng.random(fb.size) < 0.2
        with conn.cursor() as cur, cur.copy(
                "COPY feedback (project_id, client_feedback_id, event_client_id, ts, received_at, score, label) "
                "FROM STDIN") as copy:
            for i, neg in zip(fb.tolist(), negative.tolist(), strict=True):
                ts = T0 + timedelta(seconds=float(seconds[i]) + 60)
                copy.write_row((pid, f"f{i}", f"e{i}", ts, ts, 0.0 if neg else 1.0,
                                "thumbs_down" if neg else "thumbs_up"))
        scored = np.flatnonzero(rng.random(n) < 0.10)
        tox = rng.beta(0.4, 6.0, scored.size)
        toxic = rng.random(scored.size) < 0.01  # a toxic tail: ~1% of scored texts clearly toxic
        tox[toxic] = rng.uniform(0.85, 1.0, int(toxic.sum()))
        key = toxicity_scorer_key()
        # with their event's timestamp: it routes the row when the tables are partitioned (the default)
        with conn.cursor() as cur, cur.copy(
                "COPY event_scores (event_id, field, scorer, score, event_ts) FROM STDIN") as copy:
            for i, s in zip(scored.tolist(), tox.tolist(), strict=True):
                copy.write_row((i + 1, "response", key, s, T0 + timedelta(seconds=float(seconds[i]))))
        # The last day's hourly windows: 5% of each window's events in one grown cluster.
        last_day = np.flatnonzero(seconds >= (DAYS - 1) * 86400)
        members = last_day[rng.random(last_day.size) < 0.05]
        with conn.cursor() as cur, cur.copy(
                "COPY drift_cluster_events (project_id, window_start, metric, cluster, event_id) FROM STDIN") as copy:
            for i in members.tolist():
                start_of = T0 + timedelta(hours=int(seconds[i] // 3600))
                copy.write_row((pid, start_of, "drift.prompt.mmd", 3, i + 1))
        timings["copy feedback, scores, clusters"] = time.perf_counter() - start

        start = time.perf_counter()
        rebuild(conn, indexes)
        conn.execute(f"SELECT setval(pg_get_serial_sequence('events', 'id'), {n + 1})")
        conn.execute("VACUUM ANALYZE")
        timings["indexes + analyze"] = time.perf_counter() - start
    return int(pid), timings


def cases(words: list[str]) -> dict[str, list[Callable[[], EventFilters]]]:
    """Each case: a few parameter variants, cycled over the repeats."""
    days = [T0 + timedelta(days=d) for d in (3, 11, 19, 27)]

    def day(d: datetime) -> dict[str, str]:
        return {"start": d.isoformat(), "end": (d + timedelta(days=1)).isoformat()}

    last_windows = [T0 + timedelta(days=DAYS - 1, hours=h) for h in (2, 9, 15, 21)]
    return {
        "list (no filter)": [lambda: build_filters()],
        "time range (1 day)": [lambda d=d: build_filters(**day(d)) for d in days],
        "window": [lambda d=d: build_filters(window=(d + timedelta(hours=13)).isoformat()) for d in days],
        "model version": [lambda v=v: build_filters(model_version=v) for v in VERSIONS],
        "segment tier=gold + 1 day": [lambda d=d: build_filters(segment="tier=gold", **day(d)) for d in days],
        "metadata locale + tier": [lambda loc=loc: build_filters(metadata=[f"locale={loc}", "tier=silver"])
                                   for loc in LOCALES[:4]],
        "metadata, no match": [lambda: build_filters(metadata=["tier=platinum"])],
        "toxicity >= 0.9": [lambda: build_filters(toxicity_min=0.9)],
        "toxicity >= 0.5 + 1 day": [lambda d=d: build_filters(toxicity_min=0.5, **day(d)) for d in days],
        "negative feedback": [lambda: build_filters(negative_feedback=True)],
        "negative feedback + 1 day": [lambda d=d: build_filters(negative_feedback=True, **day(d)) for d in days],
        "grown cluster of a window": [lambda w=w: build_filters(cluster_window=w.isoformat()) for w in last_windows],
        "session": [lambda s=s: build_filters(session_id=f"s{s}") for s in (17, 4242, 90001, 123)],
        "search: common word": [lambda: build_filters(q="password"), lambda: build_filters(q="refund")],
        "search: rare word": [lambda w=w: build_filters(q=w) for w in words],
        "search: phrase": [lambda: build_filters(q='"reset the password"'), lambda: build_filters(q='"my order"')],
        "search: no match": [lambda: build_filters(q="zeppelinquark")],
        "search + 1 day": [lambda d=d: build_filters(q="password", **day(d)) for d in days],
    }


def measure(session: Session, project: Project, variants: list[Callable[[], EventFilters]], repeats: int,
            deep: bool = False) -> tuple[float, float, int]:
    times: list[float] = []
    rows = 0
    list_events(session, project, variants[0](), limit=50)  # warm-up (plan cache, first pages)
    for r in range(repeats):
        f = variants[r % len(variants)]()
        start = time.perf_counter()
        page = list_events(session, project, f, limit=50)
        if deep:  # page 10: nine cursor hops first
            for _ in range(9):
                if page.next_cursor is None:
                    break
                page = list_events(session, project, f, limit=50, cursor=page.next_cursor)
        times.append((time.perf_counter() - start) * 1000)
        rows = len(page.items)
        session.rollback()
    return float(np.percentile(times, 50)), float(np.percentile(times, 95)), rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--unindexed", type=int, default=None,
                    help="put the search indexer's watermark this many events below the newest: searches then "
                    "compute the text vector of those directly, as for events ingested in the last seconds")
    ap.add_argument("--keep", action="store_true", help="keep the database (it is dropped by default)")
    ap.add_argument("--reuse", action="store_true", help="measure a database kept by an earlier --keep run")
    args = ap.parse_args()
    url = ADMIN.rsplit("/", 1)[0] + f"/{NAME}"
    try:
        if args.reuse:
            with psycopg.connect(_plain(url)) as conn:
                pid = int(conn.execute("SELECT id FROM projects WHERE slug = 'bench'").fetchone()[0])  # type: ignore[index]
                args.events = int(conn.execute("SELECT count(*) FROM events").fetchone()[0])  # type: ignore[index]
            print(f"# {datetime.now(UTC):%Y-%m-%d} {platform.node()} {os.cpu_count()} cores; reusing "
                  f"{args.events:,} events")
        else:
            url = recreate(ADMIN)
            import_all_tables()
            migrations.upgrade(url)
            t0 = time.perf_counter()
            pid, timings = load(url, args.events, args.seed)
            print(f"# {datetime.now(UTC):%Y-%m-%d} {platform.node()} {os.cpu_count()} cores; {args.events:,} "
                  f"events loaded in {time.perf_counter() - t0:.0f} s "
                  f"({', '.join(f'{k} {v:.0f} s' for k, v in timings.items())})")
        if args.unindexed is not None:
            with psycopg.connect(_plain(url), autocommit=True) as conn:
                conn.execute("UPDATE event_search_state SET indexed_through = (SELECT max(id) FROM events) - %s",
                             (args.unindexed,))
            print(f"# search watermark {args.unindexed:,} events below the newest")
        engine = make_engine(url)
        with Session(engine) as session:
            project = session.get(Project, pid)
            assert project is not None
            n = session.scalar(text("SELECT count(*) FROM events"))
            words = [str(w) for w in session.scalars(text(
                "SELECT split_part(split_part(prompt, '(', 2), ' ', 1) FROM events WHERE id IN (11, 222, 3333)"))]
            print(f"# events {n:,}; feedback {session.query(Feedback).count():,}; "
                  f"scores {session.query(EventScore).count():,}; repeats {args.repeats}; page 50")
            print(f"{'case':32} {'p50 ms':>9} {'p95 ms':>9} {'rows':>5}  target")
            for name, variants in cases(words).items():
                p50, p95, rows = measure(session, project, variants, args.repeats)
                target = 1000 if name.startswith("search") else 300
                ok = "ok" if p95 <= target else "OVER"
                print(f"{name:32} {p50:9.1f} {p95:9.1f} {rows:5}  p95 <= {target} ms {ok}", flush=True)
            p50, p95, rows = measure(session, project, [lambda: build_filters()], max(args.repeats // 4, 3), deep=True)
            print(f"{'list, pages 1-10 (cursor)':32} {p50:9.1f} {p95:9.1f} {rows:5}  (ten pages in total)")
            assert session.query(Event).count() == args.events
        engine.dispose()
    finally:
        if not args.keep:
            drop(ADMIN)


if __name__ == "__main__":
    main()
