"""A Postgres database of this module's own, migrated with DRIFTLOOP_PARTITION_INTERVAL=day (so migration 0014
converts it), and a session factory bound to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from monitor import migrations
from monitor.db import make_engine
from tests.support import services


def migrate_partitioned(url: str, revision: str = "head") -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DRIFTLOOP_PARTITION_INTERVAL", "day")
        migrations.upgrade(url, revision)


@pytest.fixture(scope="module")
def part_url(_servers: tuple[str, str], worker_id: str, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"driftloop_part_{services.checkout_tag()}_{worker_id}_{request.module.__name__.rsplit('.', 1)[-1]}"[:63]
    url = services.recreate_database(_servers[0], name)
    migrate_partitioned(url)
    yield url
    services.drop_database(_servers[0], name)


@pytest.fixture(scope="module")
def part_engine(part_url: str) -> Iterator[Engine]:
    engine = make_engine(part_url)
    yield engine
    engine.dispose()


@pytest.fixture
def part_factory(part_engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=part_engine, expire_on_commit=False)
