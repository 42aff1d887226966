"""A new Postgres database is partitioned by its first migration (the default); one that already holds events is
left plain by migration 0014 and converted by `driftloop partitions convert` (and back) without losing or changing
a row; the converted schema differs from the models only where partitioning requires it."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from monitor import migrations
from monitor.cli import app as cli_app
from monitor.db import make_engine, reset_engines
from monitor.models import Base
from monitor.partitions.convert import Copied, to_partitioned
from monitor.partitions.schema import EVENT_CHILDREN, TABLES
from monitor.partitions.service import partitioned_tables
from monitor.settings import reset_settings_cache
from monitor.tables import import_all_tables
from tests.support import services

# Each table's columns as before the migration, so the checksum compares what was there (not event_ts).
CHECKED = {
    "events": ("id", "id, project_id, client_event_id, ts, received_at, session_id, prompt, response, latency_ms, "
                     "metadata"),
    "feedback": ("id", "id, project_id, client_feedback_id, event_client_id, ts, score, comment"),
    "event_vectors": ("event_id, field, model_key", "event_id, field, model_key, dim, vector"),
    "event_scores": ("event_id, field, scorer", "event_id, field, scorer, score"),
    "drift_cluster_events": ("event_id, metric", "project_id, window_start, metric, cluster, event_id"),
}
SEED = """
INSERT INTO projects (slug, name, config, created_at) VALUES ('a', 'a', '{}', now()), ('b', 'b', '{}', now());
INSERT INTO events (project_id, client_event_id, ts, received_at, session_id, prompt, response, latency_ms, metadata)
  SELECT 1 + g % 2, 'e' || g, timestamptz '2026-11-20 00:00+00' + g * interval '97 seconds', now(), 's' || g % 7,
         'prompt ' || g, CASE WHEN g % 5 > 0 THEN 'response ' || g END, g % 1000, jsonb_build_object('k', g % 3)
  FROM generate_series(1, 12000) g;
INSERT INTO events (project_id, client_event_id, ts, received_at) VALUES (1, 'ancient', '1999-01-01', now());
INSERT INTO event_vectors (event_id, field, model_key, dim, vector)
  SELECT id, 'prompt', 'm', 2, int4send(id::int) FROM events WHERE id % 3 > 0;
INSERT INTO event_scores (event_id, field, scorer, score) SELECT id, 'response', 'tox', id / 7.0 FROM events;
INSERT INTO feedback (project_id, client_feedback_id, event_client_id, ts, received_at, score, comment)
  SELECT project_id, 'f' || id, client_event_id, ts + interval '1 minute', now(), 1, 'c' FROM events WHERE id % 4 = 0;
INSERT INTO drift_cluster_events (project_id, window_start, metric, cluster, event_id)
  SELECT project_id, date_trunc('hour', ts), 'drift.prompt', 1, id FROM events WHERE id % 50 = 0;
"""


@pytest.fixture
def scratch(_servers: tuple[str, str], worker_id: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A database of its own, which the CLI uses too."""
    name = f"driftloop_part_conv_{services.checkout_tag()}_{worker_id}"[:63]
    url = services.recreate_database(_servers[0], name)
    monkeypatch.setenv("DRIFTLOOP_DATABASE_URL", url)
    monkeypatch.delenv("DRIFTLOOP_PARTITION_INTERVAL", raising=False)  # the default, `day`
    reset_settings_cache()
    reset_engines()
    yield url
    reset_settings_cache()
    reset_engines()
    services.drop_database(_servers[0], name)


def _fingerprint(engine: Engine) -> dict[str, tuple[int, str]]:
    out = {}
    with engine.connect() as conn:
        conn.exec_driver_sql("SET TimeZone = 'UTC'")
        for table, (order, cols) in CHECKED.items():
            out[table] = tuple(conn.exec_driver_sql(
                f"SELECT count(*), md5(string_agg(row({cols})::text, ',' ORDER BY {order})) FROM {table}").one())
    return out


def test_a_new_database_is_partitioned_by_default_and_off_keeps_it_plain(
    scratch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrations.upgrade(scratch)
    engine = make_engine(scratch)
    try:
        with engine.connect() as conn:
            assert {t.name for t in TABLES} <= partitioned_tables(conn)
        migrations.downgrade(scratch, "base")
        monkeypatch.setenv("DRIFTLOOP_PARTITION_INTERVAL", "off")
        migrations.upgrade(scratch)
        engine.dispose()
        with engine.connect() as conn:
            assert partitioned_tables(conn) == frozenset()
    finally:
        engine.dispose()


def test_a_populated_database_stays_plain_until_the_command_converts_it_both_ways(
    scratch: str, capfd: pytest.CaptureFixture[str]
) -> None:
    migrations.upgrade(scratch, "0013_judge")
    engine = make_engine(scratch)
    runner = CliRunner()
    try:
        with engine.begin() as conn:
            conn.connection.driver_connection.execute(SEED)  # type: ignore[union-attr]
        before = _fingerprint(engine)
        assert before["events"][0] == 12001 and before["event_vectors"][0] == 8001
        migrations.upgrade(scratch)  # DRIFTLOOP_PARTITION_INTERVAL is `day`, but the tables hold rows
        assert "driftloop partitions convert" in capfd.readouterr().err
        with engine.connect() as conn:
            assert partitioned_tables(conn) == frozenset()
        assert _fingerprint(engine) == before

        dry = runner.invoke(cli_app, ["partitions", "convert", "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "estimated time: about" in dry.output and "dry run: nothing changed" in dry.output
        assert "(about 80 s per million events" in dry.output  # derived from the rates the estimate uses
        assert "12,001" in dry.output  # the events' row count (counted: the table was never analyzed)
        with engine.connect() as conn:
            assert partitioned_tables(conn) == frozenset()
        refused = runner.invoke(cli_app, ["partitions", "convert"], input="n\n")
        assert refused.exit_code == 1
        with engine.connect() as conn:
            assert partitioned_tables(conn) == frozenset()

        done = runner.invoke(cli_app, ["partitions", "convert", "--yes"])
        assert done.exit_code == 0, done.output
        assert "converted to partitioned: 12,001 events" in done.output
        engine.dispose()
        with engine.connect() as conn:
            assert {t.name for t in TABLES} <= partitioned_tables(conn)
            # every event, whatever its day, is in a range or DEFAULT; its children carry its timestamp
            assert conn.exec_driver_sql("SELECT count(*) FROM events_default").scalar_one() == 0
            # history older than a month goes into month ranges, only where there are rows
            assert conn.exec_driver_sql("SELECT tableoid::regclass::text FROM events WHERE client_event_id = "
                                        "'ancient'").scalar_one() == "events_p19990101"
            assert conn.exec_driver_sql("SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass"
                                        ).scalar_one() < 100  # daily since 1999 would be 10,000
            assert conn.exec_driver_sql(
                "SELECT count(*) FROM event_vectors v JOIN events e ON e.id = v.event_id AND e.ts = v.event_ts"
            ).scalar_one() == 8001
            assert conn.exec_driver_sql("SELECT count(*) FROM event_keys").scalar_one() == 12001
            assert conn.exec_driver_sql("SELECT count(*) FROM feedback_keys").scalar_one() == 3000
        assert _fingerprint(engine) == before
        again = runner.invoke(cli_app, ["partitions", "convert", "--yes"])
        assert again.exit_code == 0 and "already partitioned" in again.output
        # the id sequence survived the rebuild: a new event gets the next id, not 1
        with engine.begin() as conn:
            new_id = conn.exec_driver_sql("INSERT INTO events (project_id, client_event_id, ts, received_at) "
                                          "VALUES (1, 'new', now(), now()) RETURNING id").scalar_one()
            assert new_id > 12001
            conn.exec_driver_sql("DELETE FROM events WHERE id = %(i)s", {"i": new_id})
            conn.exec_driver_sql("DELETE FROM event_keys WHERE client_event_id = 'new'")
            # 'e5' resent with another day's timestamp: stored again on partitioned storage, with an embedding
            copy = conn.exec_driver_sql("INSERT INTO events (project_id, client_event_id, ts, received_at) "
                                        "SELECT project_id, client_event_id, ts + interval '3 days', now() FROM events "
                                        "WHERE client_event_id = 'e5' RETURNING id, ts").one()
            conn.exec_driver_sql("INSERT INTO event_vectors (event_id, field, model_key, dim, vector, event_ts) "
                                 "VALUES (%(i)s, 'prompt', 'm', 1, '\\x00', %(t)s)", {"i": copy[0], "t": copy[1]})
        engine.dispose()

        dry = runner.invoke(cli_app, ["partitions", "convert", "--to", "plain", "--dry-run"])
        assert dry.exit_code == 0 and "1 client ids are stored more than once" in dry.output, dry.output
        back = runner.invoke(cli_app, ["partitions", "convert", "--to", "plain", "--yes"])
        assert back.exit_code == 0, back.output
        assert "1 repeated client ids dropped" in back.output  # the later copy, and its embedding: as before
        engine.dispose()
        with engine.connect() as conn:
            assert partitioned_tables(conn) == frozenset()
            fks = conn.exec_driver_sql("SELECT conrelid::regclass::text FROM pg_constraint WHERE contype = 'f' "
                                       "AND confrelid = 'events'::regclass").scalars()
            assert sorted(fks) == sorted(EVENT_CHILDREN)
        assert _fingerprint(engine) == before
    finally:
        engine.dispose()


def test_while_the_rows_are_copied_reads_go_on_and_writes_wait(scratch: str) -> None:
    migrations.upgrade(scratch, "0013_judge")
    engine = make_engine(scratch)
    try:
        with engine.begin() as conn:
            conn.connection.driver_connection.execute(SEED)  # type: ignore[union-attr]
        migrations.upgrade(scratch)  # stays plain: it holds rows
        seen: dict[str, object] = {}

        def probe(note: Copied) -> None:
            if note.table in seen:
                return
            with engine.connect() as other:  # another session, as a dashboard or a collector would be
                other.exec_driver_sql("SET lock_timeout = '500ms'")
                seen[note.table] = other.exec_driver_sql(f"SELECT count(*) FROM {note.table}").scalar_one()
                try:
                    other.exec_driver_sql("INSERT INTO events (project_id, client_event_id, ts, received_at) "
                                          "VALUES (1, 'during', now(), now())")
                    seen["write"] = "stored"
                except OperationalError as exc:
                    seen["write"] = "lock timeout" if "lock timeout" in str(exc) else str(exc)
                other.rollback()

        with engine.begin() as conn:
            copied = to_partitioned(conn, "day", progress=probe)
        assert copied["events"] == 12001
        assert seen == {"events": 12001, "feedback": 3000, "event_vectors": 8001, "event_scores": 12001,
                        "event_search": 12001, "write": "lock timeout"}
    finally:
        engine.dispose()


def test_the_migration_downgrade_converts_a_partitioned_database_back(scratch: str) -> None:
    migrations.upgrade(scratch)  # new and empty: partitioned
    engine = make_engine(scratch)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO projects (slug, name, config, created_at) VALUES ('a', 'a', '{}', now())")
            conn.exec_driver_sql("INSERT INTO events (project_id, client_event_id, ts, received_at) "
                                 "SELECT 1, 'e' || g, now() - g * interval '1 hour', now() "
                                 "FROM generate_series(1, 50) g")
        migrations.downgrade(scratch, "0013_judge")
        engine.dispose()
        with engine.connect() as conn:
            assert partitioned_tables(conn) == frozenset()
            assert conn.exec_driver_sql("SELECT count(*) FROM events").scalar_one() == 50
    finally:
        engine.dispose()


def _unique_keys(conn: object, table: str) -> dict[str, str]:
    """Unique indexes of the table and of its partitions: name -> columns."""
    rows = conn.exec_driver_sql(  # type: ignore[attr-defined]
        "SELECT ic.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid "
        "WHERE x.indisunique AND NOT x.indisprimary AND (x.indrelid = %(t)s::regclass OR x.indrelid IN "
        "(SELECT inhrelid FROM pg_inherits WHERE inhparent = %(t)s::regclass))", {"t": table}).all()
    return {name: definition.split("(", 1)[1].rstrip(")") for name, definition in rows}


def test_0017_moves_the_client_id_key_into_each_partition_and_back(scratch: str) -> None:
    migrations.upgrade(scratch)
    engine = make_engine(scratch)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO projects (slug, name, config, created_at) VALUES ('a', 'a', '{}', now())")
            # 'e1' twice, on two days: allowed since 0017 (the same id resent with another explicit timestamp)
            conn.exec_driver_sql("INSERT INTO events (project_id, client_event_id, ts, received_at) "
                                 "SELECT 1, 'e' || g, now() - g * interval '7 hours', now() "
                                 "FROM generate_series(1, 20) g "
                                 "UNION ALL SELECT 1, 'e1', now() - interval '3 days', now()")
            conn.exec_driver_sql("INSERT INTO event_vectors (event_id, field, model_key, dim, vector, event_ts) "
                                 "SELECT id, 'prompt', 'm', 1, '\\x00', ts FROM events")
            head = _unique_keys(conn, "events")
        assert head and all(k.endswith("_client_id_key") and v == "project_id, client_event_id"
                            for k, v in head.items())
        migrations.downgrade(scratch, "0016_partial_session_index")
        engine.dispose()
        with engine.connect() as conn:
            before = _unique_keys(conn, "events")
            assert before["uq_events_project_client_id"] == "project_id, client_event_id, ts"
            assert not any(k.endswith("_client_id_key") for k in before)
            assert conn.exec_driver_sql("SELECT count(*) FROM event_keys").scalar_one() == 20  # every id, once
        migrations.upgrade(scratch)
        engine.dispose()
        with engine.connect() as conn:
            assert _unique_keys(conn, "events") == head
            assert conn.exec_driver_sql("SELECT count(*) FROM events").scalar_one() == 21
        migrations.downgrade(scratch, "0013_judge")  # to plain: one row per client id, the first one kept
        engine.dispose()
        with engine.connect() as conn:
            assert partitioned_tables(conn) == frozenset()
            assert conn.exec_driver_sql("SELECT count(*) FROM events").scalar_one() == 20
            assert conn.exec_driver_sql("SELECT ts > now() - interval '1 day' FROM events "
                                        "WHERE client_event_id = 'e1'").scalar_one() is True  # the first stored
            assert conn.exec_driver_sql("SELECT count(*) FROM event_vectors").scalar_one() == 20
    finally:
        engine.dispose()


# What partitioning changes on purpose (monitor/partitions/schema.py): the partitions and the dedupe-key tables
# are not models; the unique keys gain the partition key; the children lose their foreign key to events and their
# event_ts becomes required.
_PARTITION_TABLE = re.compile(
    r"^(events|feedback|event_vectors|event_scores|event_search)_(p\d{8}|default)$|^(event|feedback)_keys$")


def _expected(diff: object) -> bool:
    if isinstance(diff, list):
        return all(_expected(d) for d in diff)
    kind, obj = diff[0], diff[1]  # type: ignore[index]
    if kind in ("remove_table", "remove_index"):
        table = obj.name if kind == "remove_table" else obj.table.name
        return bool(_PARTITION_TABLE.match(table))
    if kind == "modify_nullable":
        return diff[2] in ("event_vectors", "event_scores", "event_search") and diff[3] == "event_ts"  # type: ignore[index]
    if kind == "add_fk":
        return obj.table.name in EVENT_CHILDREN and obj.referred_table.name == "events"
    if kind in ("add_constraint", "remove_constraint"):
        return obj.table.name in ("events", "feedback")
    return False


def test_the_partitioned_schema_differs_from_the_models_only_where_partitioning_must(
    part_url: str, recwarn: pytest.WarningsRecorder
) -> None:
    import_all_tables()
    engine = make_engine(part_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    finally:
        engine.dispose()
    unexpected = [d for d in diff if not _expected(d)]
    assert unexpected == []
    kinds = {(d[0][0] if isinstance(d, list) else d[0]) for d in diff}
    assert {"remove_table", "add_fk", "add_constraint", "modify_nullable"} <= kinds  # it did partition
