"""Fixtures of the UI tests: settings that allow the loopback webhook receiver, an operator, and a signed-in
TestClient (the real app on the test's rolled-back connection)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from monitor.settings import Settings, reset_settings_cache
from monitor.ui.accounts import create_operator
from tests.support.factories import unique_slug
from tests.support.ui_seed import PASSWORD
from tests.support.ui_session import sign_in
from tests.support.webhook_receiver import Receiver, running_receiver


@pytest.fixture
def local_hooks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Process settings (what alert hooks read) that allow posting to the loopback receiver."""
    monkeypatch.setenv("DRIFTLOOP_WEBHOOK_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("DRIFTLOOP_WEBHOOK_TIMEOUT_SECONDS", "5")
    reset_settings_cache()
    yield
    reset_settings_cache()


@pytest.fixture
def settings(backend: str, request: pytest.FixtureRequest, tmp_path: Path, local_hooks: None) -> Settings:
    url = request.getfixturevalue("pg_url" if backend == "postgres" else "sqlite_url")
    return Settings(database_url=url, data_dir=tmp_path / "data", webhook_allow_private=True,
                    ui_login_max_failures=3)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


@pytest.fixture
def operator(session: Session) -> str:
    name = unique_slug("op")
    create_operator(session, name, PASSWORD)
    session.commit()
    return name


@pytest.fixture
def ui(client: TestClient, operator: str) -> TestClient:
    """The client, signed in as `operator`."""
    r = sign_in(client, operator)
    assert r.status_code == 303, r.text
    return client
