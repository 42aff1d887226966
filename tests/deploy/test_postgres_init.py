"""dashboards/postgres-init/10-grafana-reader.sh, run for real the way the postgres image runs it: then the
schema is migrated as the owner, and Grafana's role can read every table and write none."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.engine import URL, make_url

from monitor import migrations
from monitor.models import Base
from tests.support.services import repo_root

pytestmark = pytest.mark.postgres
SCRIPT = repo_root() / "dashboards" / "postgres-init" / "10-grafana-reader.sh"


def dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def scratch(pg_url: str) -> Iterator[tuple[URL, str]]:
    """An empty database as the postgres image has it at first start, and the reader role's name."""
    url = make_url(pg_url)
    tag = uuid.uuid4().hex[:8]
    name, reader = f"driftloop_init_{tag}", f"grafana_reader_{tag}"
    admin = dsn(url.set(database="postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name), reader
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{reader}"')


def test_grafana_reader_reads_every_table_and_writes_none(scratch: tuple[URL, str]) -> None:
    url, reader = scratch
    env = {**os.environ, "PGHOST": url.host or "127.0.0.1", "PGPORT": str(url.port or 5432),
           "PGPASSWORD": url.password or "", "POSTGRES_USER": url.username or "postgres",
           "POSTGRES_DB": url.database or "", "GRAFANA_DB_USER": reader, "GRAFANA_DB_PASSWORD": "reader's secret"}
    subprocess.run(["sh", str(SCRIPT)], env=env, check=True, capture_output=True)
    migrations.upgrade(url.render_as_string(hide_password=False))  # tables created afterwards, by the owner

    # Every table of the schema on Base.metadata.
    import monitor.alerts.models
    import monitor.pipeline.models
    import retrain.models

    assert monitor.alerts.models and monitor.pipeline.models and retrain.models

    tables = sorted(Base.metadata.tables)
    assert {"metric_values", "alerts", "model_versions", "webhook_attempts"} <= set(tables)
    with psycopg.connect(host=url.host, port=url.port or 5432, dbname=url.database, user=reader,
                         password="reader's secret", autocommit=True) as conn:
        for table in tables:
            conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO projects (slug, name, created_at, config) VALUES ('x', 'x', now(), '{}')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM metric_values")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE sneaky (id int)")


def test_the_script_refuses_to_run_without_its_variables() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAFANA_DB_")}
    done = subprocess.run(["sh", str(SCRIPT)], env={**env, "POSTGRES_USER": "x", "POSTGRES_DB": "x"},
                          capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "GRAFANA_DB_USER" in done.stderr
