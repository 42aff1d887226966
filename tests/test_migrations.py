"""Migrations run both ways on both backends, and the ORM matches what they build."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from monitor import migrations
from monitor.db import make_engine
from monitor.models import Base
from monitor.tables import import_all_tables
from tests.support import services


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


def test_models_match_migrations(scratch_url: str) -> None:
    import_all_tables()
    migrations.upgrade(scratch_url)
    engine = make_engine(scratch_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, Base.metadata)
        assert diff == [], f"ORM and migrations disagree: {diff}"
    finally:
        engine.dispose()
