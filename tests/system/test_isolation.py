"""The per-test rollback really undoes what the code under test committed, on both backends."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.models import Project
from tests.conftest import _rolled_back_connection


@pytest.mark.parametrize("engine_fixture", ["pg_engine", "sqlite_rollback_engine"])
def test_commits_inside_a_test_are_rolled_back(engine_fixture: str, request: pytest.FixtureRequest) -> None:
    engine: Engine = request.getfixturevalue(engine_fixture)
    slug = f"isolation-{engine_fixture}"
    rolled_back = _rolled_back_connection(engine)
    connection = next(rolled_back)
    maker = sessionmaker(bind=connection, join_transaction_mode="create_savepoint")
    with maker() as s:  # as service code would: add, commit, and commit again
        s.add(Project(slug=slug, name=slug))
        s.commit()
    with maker() as s:
        assert s.scalar(select(func.count()).select_from(Project).where(Project.slug == slug)) == 1
    next(rolled_back, None)  # the fixture's teardown
    with Session(engine) as fresh:
        assert fresh.scalar(select(func.count()).select_from(Project).where(Project.slug == slug)) == 0
