"""The settings page in a real browser (Debian's Chromium driven by Playwright) against the real collector on a
Postgres database of its own: an operator changes the window length and the reference, sees a refused value
marked next to its field, and finds both saves in the recent changes. Screenshots under tests/artifacts/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from monitor import migrations
from monitor.db import make_engine, session_factory
from monitor.demo.run import running_collector
from monitor.models import Project
from monitor.pipeline.models import WindowState
from monitor.projects.config_service import history
from monitor.projects.service import get_or_create_project
from monitor.settings import Settings
from monitor.ui.accounts import create_operator
from tests.support import services
from tests.support.ui_seed import PASSWORD
from tests.ui.test_browser import ARTIFACTS, browser, page

__all__ = ["browser", "page"]  # the browser fixtures, shared with tests/ui/test_browser.py

OPERATOR = "olga"
SLUG = "support-bot"
pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Live:
    url: str
    project_id: int
    factory: sessionmaker[Session]


@pytest.fixture(scope="module")
def live(_servers: tuple[str, str], worker_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    name = f"driftloop_ui_settings_{services.checkout_tag()}_{worker_id}"
    url = services.recreate_database(_servers[0], name)
    migrations.upgrade(url)
    settings = Settings(database_url=url, data_dir=tmp_path_factory.mktemp("ui-settings") / "data")
    engine = make_engine(url)
    factory = session_factory(engine)
    with factory() as s:
        project = get_or_create_project(s, SLUG)
        start = datetime(2026, 12, 1, tzinfo=UTC)
        for i in range(4):  # windows already computed: a reference change says it affects them
            s.add(WindowState(project_id=project.id, window_start=start + timedelta(hours=i),
                              window_end=start + timedelta(hours=i + 1), computed_at=start + timedelta(hours=i + 1),
                              complete=True))
        create_operator(s, OPERATOR, PASSWORD)
        s.commit()
        pid = project.id
    try:
        with running_collector(settings) as base:
            yield Live(base, pid, factory)
    finally:
        engine.dispose()
        services.drop_database(_servers[0], name)


def _config(live: Live) -> dict[str, Any]:
    with live.factory() as s:
        project = s.get(Project, live.project_id)
        assert project is not None
        return dict(project.config or {})


def test_change_settings_see_an_error_inline_and_the_audit(page: Any, live: Live) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = f"{live.url}/ui/p/{SLUG}/settings"
    page.goto(target)
    assert "/ui/login" in page.url
    page.fill("input[name=username]", OPERATOR)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(target)
    assert page.locator("h1").inner_text() == "Settings"
    assert "first 1,000 events" in page.locator("#reference").inner_text()
    page.screenshot(path=str(ARTIFACTS / "ui-settings.png"), full_page=True)

    # A value the schema refuses: marked next to its field, what was typed kept, nothing saved.
    windows = page.locator("form[data-section=windows]")
    windows.locator("input[name=window_seconds]").fill("60")
    windows.locator("button[type=submit]").click()
    page.wait_for_load_state()
    error = page.locator("#f-window_seconds-error")
    assert "greater than or equal to 300" in error.inner_text()
    assert page.locator("input[name=window_seconds]").input_value() == "60"
    assert page.locator("input[name=window_seconds]").get_attribute("aria-invalid") == "true"
    page.screenshot(path=str(ARTIFACTS / "ui-settings-error.png"), full_page=True)
    assert _config(live) == {}

    # Fixed (the length back to its default, a segment key added): saved, applying from now on.
    page.locator("form[data-section=windows] input[name=window_seconds]").fill("")
    page.locator("form[data-section=windows] input[name=segment_keys]").fill("region, plan")
    page.locator("form[data-section=windows] button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/settings\?saved=.*"))
    notice = page.locator("p.notice").inner_text()
    assert "Windows and segments saved" in notice and "applies to windows computed from now on" in notice
    assert _config(live) == {"segment_keys": ["region", "plan"]}

    # The reference: first 500 events of v2, recomputing what was computed.
    ref = page.locator("form[data-section=reference]")
    ref.locator("input[name='reference.n']").fill("500")
    ref.locator("input[name='reference.model_version']").fill("v2")
    ref.locator("input[name=recompute]").check()
    ref.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/settings\?saved=.*"))
    notice = page.locator("p.notice").inner_text()
    assert "Reference saved" in notice and "4 computed window(s)" in notice, notice
    assert "marked for recomputation" in notice, notice
    assert _config(live)["reference"] == {"kind": "first_n", "n": 500, "model_version": "v2"}

    rows = page.locator("table.history tbody tr, table.history tr:has(td)")
    assert rows.count() == 2
    assert "reference.n" in rows.first.inner_text() and f"ui operator {OPERATOR}" in rows.first.inner_text()
    page.screenshot(path=str(ARTIFACTS / "ui-settings-saved.png"), full_page=True)
    with live.factory() as s:
        changes = history(s, live.project_id)
        assert [c.recomputed_windows for c in changes] == [4, 0]
