"""Fixtures shared by the alert and webhook tests: a loopback receiver, settings that allow it, a project.
Each test package's conftest imports them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from monitor.models import Project
from monitor.projects.service import get_or_create_project
from monitor.settings import Settings, reset_settings_cache
from tests.support.factories import unique_slug
from tests.support.webhook_receiver import Receiver, running_receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


@pytest.fixture
def local_hooks(monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Process settings (what hooks and the runner read) that allow posting to the loopback receiver."""
    monkeypatch.setenv("DRIFTLOOP_WEBHOOK_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("DRIFTLOOP_WEBHOOK_TIMEOUT_SECONDS", "5")
    reset_settings_cache()
    yield Settings()
    reset_settings_cache()


@pytest.fixture
def project(session: Session) -> Project:
    p = get_or_create_project(session, unique_slug())
    session.commit()
    return p
