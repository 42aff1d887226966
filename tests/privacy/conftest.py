"""Fixtures shared by the privacy tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection
from sqlalchemy.orm import Session, sessionmaker

from monitor.api.app import create_app
from monitor.settings import Settings


@pytest.fixture
def app_for(connection: Connection, session_maker: sessionmaker[Session], settings: Settings) -> Iterator[Any]:
    """`app_for(**setting_overrides)`: a started test client of an app with those settings, on the test database."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        app = create_app(settings.model_copy(update=overrides), engine=connection.engine)
        app.state.session_factory = session_maker
        clients.append(TestClient(app))
        return clients[-1].__enter__()

    yield make
    for c in clients:
        c.__exit__(None, None, None)
