"""Fixtures of the UI tests: settings that allow the loopback webhook receiver, an operator, and a signed-in
TestClient (the real app on the test's rolled-back connection)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from monitor.settings import Settings, reset_settings_cache
from monitor.ui.accounts import create_operator
from tests.support.factories import unique_slug
from tests.support.webhook_receiver import Receiver, running_receiver
from tests.ui.seed import PASSWORD


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


def login_nonce(client: TestClient) -> str:
    page = client.get("/ui/login")
    assert page.status_code == 200
    found = re.search(r'name="nonce" value="([^"]+)"', page.text)
    assert found, "the sign-in form carries a nonce"
    return found.group(1)


def sign_in(client: TestClient, username: str, password: str = PASSWORD, next_path: str = "/ui/"):  # type: ignore[no-untyped-def]
    return client.post("/ui/login", data={"username": username, "password": password, "nonce": login_nonce(client),
                                          "next": next_path}, follow_redirects=False)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page carries a CSRF token"
    return found.group(1)


@pytest.fixture
def ui(client: TestClient, operator: str) -> TestClient:
    """The client, signed in as `operator`."""
    r = sign_in(client, operator)
    assert r.status_code == 303, r.text
    return client
