"""The read/write split on a real streaming replica (issue #22): a throwaway primary and a `pg_basebackup -R`
replica of it, started from the local Postgres binaries. Events are written through the collector to the primary
and read back through the read API and the UI's explorer from the replica once it has replayed them (with replay
paused, neither shows them yet: the reads really come from the replica); writes never reach the replica."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import InternalError
from sqlalchemy.orm import Session

from monitor import migrations
from monitor.api.app import create_app
from monitor.db import ReadOnlySessionError
from monitor.models import Project
from monitor.projects.service import create_key
from monitor.settings import Settings
from monitor.ui.accounts import create_operator
from tests.support.factories import event_dict
from tests.support.replica import PrimaryAndReplica, plain, start_primary_and_replica
from tests.support.services import Throwaways
from tests.support.ui_seed import PASSWORD
from tests.support.ui_session import sign_in
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture(scope="module")
def clusters() -> Iterator[PrimaryAndReplica]:
    t = Throwaways()
    try:
        pair = start_primary_and_replica(t)
        if pair is None:
            pytest.skip("needs the Postgres server binaries (initdb, pg_ctl, pg_basebackup), e.g. postgresql-15")
        yield pair
    finally:
        t.stop()


class Statements:
    """Counts the SQL statements an engine sends: which server a request really used."""

    def __init__(self, engine: Engine) -> None:
        self.sql: list[str] = []
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.sql.append(statement)


def _listed(client: TestClient, key: str, event_id: str) -> list[dict[str, Any]]:
    r = client.get("/v1/events", params={"event_id": event_id}, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def test_reads_come_from_the_replica_once_replayed_and_writes_never_go_there(clusters: PrimaryAndReplica) -> None:
    with psycopg.connect(plain(clusters.primary.url), autocommit=True) as conn:
        conn.execute("CREATE DATABASE driftloop")
    primary_url, replica_url = clusters.database_urls("driftloop")
    migrations.upgrade(primary_url)  # the replica gets the schema by streaming, like every later write
    settings = Settings(database_url=primary_url, read_database_url=replica_url)
    app = create_app(settings)
    engine: Engine = app.state.engine
    with Session(engine) as s:
        key = create_key(s, "replicated", scopes="ingest,read").key
        operator = create_operator(s, "replica-reader", PASSWORD).username
        s.commit()
    auth = {"Authorization": f"Bearer {key}"}
    on_replica = Statements(app.state.read_engine)
    wait_for(lambda: clusters.replayed(clusters.primary_lsn()), 60, "the replica to replay the schema and the key")

    # Replay paused: the replica stays at this point, so what a read shows tells which server answered it.
    clusters.replica_sql("SELECT pg_wal_replay_pause()")
    with TestClient(app) as client:
        assert sign_in(client, operator).status_code == 303  # the sign-in writes its session on the primary
        sent = event_dict()
        before = len(on_replica.sql)
        r = client.post("/v1/events", json={"events": [sent]}, headers=auth)
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
        fb = client.post("/v1/feedback", json={"feedback": [{"feedback_id": "fb-1", "event_id": sent["event_id"],
                                                             "score": 1.0}]}, headers=auth)
        assert fb.status_code == 200, fb.text
        assert on_replica.sql[before:] == []  # the write routes sent nothing to the replica
        with Session(engine) as s:
            stored = s.scalar(text("SELECT id FROM events WHERE client_event_id = :e"), {"e": sent["event_id"]})
        assert stored is not None  # on the primary at once ...
        assert _listed(client, key, sent["event_id"]) == []  # ... not yet visible where the read API reads
        page = client.get("/ui/p/replicated/events")  # nor in the UI's explorer
        assert page.status_code == 200 and 'id="no-events"' in page.text and sent["prompt"] not in page.text
        assert len(on_replica.sql) > before

        lsn = clusters.primary_lsn()
        clusters.replica_sql("SELECT pg_wal_replay_resume()")
        wait_for(lambda: clusters.replayed(lsn), 60, f"the replica to replay up to {lsn}")
        items = _listed(client, key, sent["event_id"])
        assert [i["event_id"] for i in items] == [sent["event_id"]]
        detail = client.get(f"/v1/events/{items[0]['id']}", headers=auth)
        assert detail.status_code == 200, detail.text
        assert detail.json()["prompt"] == sent["prompt"]
        assert sent["prompt"] in client.get("/ui/p/replicated/events").text
        # Another read route (metrics) answers from the replica too.
        reads_before = len(on_replica.sql)
        assert client.get("/v1/metrics", headers=auth).status_code == 200
        assert len(on_replica.sql) > reads_before

    # A read session refuses to write before the replica has to; the replica refuses raw SQL writes itself.
    with app.state.read_session_factory() as read, pytest.raises(ReadOnlySessionError):
        read.add(Project(slug="never-written", name="never-written"))
        read.flush()
    with app.state.read_session_factory() as read, pytest.raises(InternalError, match="read-only transaction"):
        read.execute(text("DELETE FROM events"))
    engine.dispose()
    app.state.read_engine.dispose()


def test_the_replica_setting_needs_postgres_on_both_sides() -> None:
    with pytest.raises(ValueError, match="DRIFTLOOP_READ_DATABASE_URL needs Postgres"):
        Settings(database_url="sqlite:///x.db", read_database_url="postgresql+psycopg://h/db")
    with pytest.raises(ValueError, match="DRIFTLOOP_READ_DATABASE_URL needs Postgres"):
        Settings(database_url="postgresql+psycopg://h/db", read_database_url="sqlite:///x.db")
    assert Settings(database_url="postgresql+psycopg://h/db").read_database_url is None
