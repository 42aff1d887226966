"""Migrations run both ways on both backends, and the ORM matches what they build."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor import migrations
from monitor.api.app import create_app
from monitor.db import make_engine
from monitor.models import Base
from monitor.projects.service import SCOPES, authenticate, hash_key
from monitor.settings import Settings
from monitor.tables import import_all_tables
from tests.support import services
from tests.support.factories import event_dict


@pytest.fixture(params=["postgres", "sqlite"])
def scratch_url(request: pytest.FixtureRequest, tmp_path: Path, worker_id: str):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
        return
    admin = request.getfixturevalue("_servers")[0]
    name = f"driftloop_migrations_{services.checkout_tag()}_{worker_id}"
    yield services.recreate_database(admin, name)
    services.drop_database(admin, name)


def test_upgrade_downgrade_upgrade(scratch_url: str) -> None:
    migrations.upgrade(scratch_url)
    engine = make_engine(scratch_url)
    try:
        assert migrations.current_revision(engine) == migrations.head_revision()
        assert {"projects", "api_keys", "events", "feedback", "metric_values"} <= set(inspect(engine).get_table_names())
        migrations.downgrade(scratch_url, "base")
        assert not ({"projects", "events"} & set(inspect(engine).get_table_names()))
        migrations.upgrade(scratch_url)
        assert migrations.current_revision(engine) == migrations.head_revision()
    finally:
        engine.dispose()


def test_models_match_migrations(scratch_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The plain shape (SQLite, and Postgres with partitioning off); what the partitioned one may differ in is
    tests/partitions/test_conversion.py's."""
    import_all_tables()
    monkeypatch.setenv("DRIFTLOOP_PARTITION_INTERVAL", "off")
    migrations.upgrade(scratch_url)
    engine = make_engine(scratch_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, Base.metadata)
        assert diff == [], f"ORM and migrations disagree: {diff}"
    finally:
        engine.dispose()


# A key as `driftloop keys create` made it before scopes existed (revision 0006).
_OLD_KEY = "dl_0ld0ld00_" + "ab" * 24


def _insert_pre_scope_key(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO projects (slug, name, config, created_at) "
                              "VALUES ('legacy', 'legacy', '{}', CURRENT_TIMESTAMP)"))
            conn.execute(text("INSERT INTO api_keys (project_id, name, prefix, key_hash, created_at) "
                              "SELECT id, 'app', 'dl_0ld0ld00', :h, CURRENT_TIMESTAMP FROM projects "
                              "WHERE slug = 'legacy'"), {"h": hash_key(_OLD_KEY)})
    finally:
        engine.dispose()


def test_a_key_from_before_scopes_keeps_full_access_after_the_upgrade(scratch_url: str, tmp_path: Path) -> None:
    # A running deployment upgrades: its applications' and scripts' keys must go on working for everything they
    # did before (0007 gives existing keys every scope); new keys are scoped from then on.
    migrations.upgrade(scratch_url, "0006")
    _insert_pre_scope_key(scratch_url)
    migrations.upgrade(scratch_url)
    engine = make_engine(scratch_url)
    try:
        with engine.connect() as conn:
            with Session(bind=conn) as s:
                caller = authenticate(s, _OLD_KEY)
            assert caller is not None and caller.scopes == SCOPES
            # The default that filled the old rows is gone: a key written without scopes is an error, not admin.
            with pytest.raises(IntegrityError), conn.begin():
                conn.execute(text("INSERT INTO api_keys (project_id, name, prefix, key_hash, created_at) "
                                  "SELECT id, 'x', 'dl_x', 'h', CURRENT_TIMESTAMP FROM projects"))
        app = create_app(Settings(database_url=scratch_url, data_dir=tmp_path), engine=engine)
        auth = {"Authorization": f"Bearer {_OLD_KEY}"}
        with TestClient(app) as client:
            assert client.post("/v1/events", json={"events": [event_dict()]}, headers=auth).status_code == 200
            assert client.get("/v1/metrics", headers=auth).status_code == 200
            rule = {"name": "slow", "metric": "ops.latency_p95", "comparator": ">", "threshold": 2500}
            assert client.post("/v1/alert-rules", json=rule, headers=auth).status_code == 201
        migrations.downgrade(scratch_url, "0006")
        assert "scopes" not in {c["name"] for c in inspect(engine).get_columns("api_keys")}
    finally:
        engine.dispose()
