"""Revision 0016: the events' session index is partial (`WHERE session_id IS NOT NULL`) in every shape, so an
event without a session skips that B-tree insert, and the queries that look a session up still use it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, text

from monitor import migrations
from tests.support import services


@pytest.fixture(scope="module", params=["day", "off"])
def shaped_url(request: pytest.FixtureRequest, _servers: tuple[str, str], worker_id: str) -> Iterator[str]:
    name = f"driftloop_sessidx_{services.checkout_tag()}_{worker_id}_{request.param}"[:63]
    url = services.recreate_database(_servers[0], name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DRIFTLOOP_PARTITION_INTERVAL", request.param)
        migrations.upgrade(url)
    yield url.replace("postgresql+psycopg", "postgresql")
    services.drop_database(_servers[0], name)


def _session_index_defs(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename LIKE 'events%' "
                        "AND indexdef LIKE '%(project_id, session_id)%'").fetchall()
    return [str(r[0]) for r in rows]


def test_the_session_index_is_partial_on_the_table_and_every_partition(shaped_url: str) -> None:
    with psycopg.connect(shaped_url) as conn:
        defs = _session_index_defs(conn)
        parts = conn.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass").fetchone()
        assert parts is not None
        assert len(defs) == 1 + parts[0]  # the table's own, and one per partition (none when plain)
        assert all(d.endswith("WHERE (session_id IS NOT NULL)") for d in defs), defs


def test_a_session_lookup_with_a_bound_value_uses_the_partial_index(shaped_url: str) -> None:
    with psycopg.connect(shaped_url) as conn:  # rolled back: the database stays empty for the other test
        conn.execute("INSERT INTO events (project_id, client_event_id, ts, received_at, session_id) "
                     "SELECT 1, 'e' || i, now(), now(), CASE WHEN i % 10 = 0 THEN 's' || i END "
                     "FROM generate_series(1, 5000) i")
        conn.execute("ANALYZE events")
        # A generic plan, as for a prepared statement: the planner must prove `session_id = $1` implies
        # `session_id IS NOT NULL` without knowing the value.
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute("SET enable_seqscan = off")
        conn.execute("PREPARE same_session(text) AS SELECT id FROM events WHERE project_id = 1 AND session_id = $1")
        plan = "\n".join(str(r[0]) for r in conn.execute("EXPLAIN EXECUTE same_session('s10')").fetchall())
        used = re.findall(r"Index (?:Only )?Scan using (\S+)|Bitmap Index Scan on (\S+)", plan)
        assert used and all("session" in "".join(u) for u in used), plan
        found = conn.execute("EXECUTE same_session('s10')").fetchall()
        assert len(found) == 1
        conn.rollback()


def test_sqlite_builds_the_same_partial_index(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrations.upgrade(url)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'ix_events_project_session'")).scalar()
        assert sql is not None and sql.endswith("WHERE session_id IS NOT NULL"), sql
    finally:
        engine.dispose()
