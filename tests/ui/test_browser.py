"""The approval UI in a real browser (Debian's Chromium driven by Playwright) against the real collector on
a Postgres database of its own: sign in, open the pending challenger, approve it, see the champion change
and the audit entry; forged posts without the CSRF token are refused; an unauthenticated visit is sent to
sign-in. Screenshots of the overview and the challenger page are saved under tests/artifacts/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from monitor import migrations
from monitor.db import make_engine, session_factory
from monitor.demo.run import running_collector
from monitor.settings import Settings
from monitor.ui.accounts import create_operator
from retrain.registry.service import aliases_of, get_version
from tests.support import services
from tests.support.ui_seed import PASSWORD, World, register_rich_challenger, seed_world

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = services.repo_root() / "tests" / "artifacts"
OPERATOR = "alice"
pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Live:
    url: str
    world: World
    factory: sessionmaker[Session]
    settings: Settings


@pytest.fixture(scope="module")
def live(_servers: tuple[str, str], worker_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    name = f"driftloop_ui_{services.checkout_tag()}_{worker_id}"
    url = services.recreate_database(_servers[0], name)
    migrations.upgrade(url)
    settings = Settings(database_url=url, data_dir=tmp_path_factory.mktemp("ui-browser") / "data")
    engine = make_engine(url)
    factory = session_factory(engine)
    world = seed_world(factory, settings, slug="support-bot")
    with factory() as s:
        create_operator(s, OPERATOR, PASSWORD)
        s.commit()
    try:
        with running_collector(settings) as base:
            yield Live(base, world, factory, settings)
    finally:
        engine.dispose()
        services.drop_database(_servers[0], name)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.is_file(), "Chromium is missing: `apt-get install -y chromium` (make install does it)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 900}, accept_downloads=True)
    context.set_default_timeout(30_000)
    yield context.new_page()
    context.close()


def sign_in(page: Any, live: Live, start: str = "/ui/") -> None:
    page.goto(live.url + start)
    assert "/ui/login" in page.url
    page.fill("input[name=username]", OPERATOR)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(re.compile(re.escape(live.url + start.split("?")[0]) + ".*"))


def status_of(live: Live, name: str) -> tuple[str, dict[str, str]]:
    with live.factory() as s:
        return get_version(s, live.world.project_id, name).status, aliases_of(s, live.world.project_id)


def test_an_unauthenticated_visit_is_sent_to_sign_in(page: Any, live: Live) -> None:
    target = f"/ui/p/{live.world.slug}/models/{live.world.challenger}"
    page.goto(live.url + target)
    assert page.url.startswith(live.url + "/ui/login?next=")
    assert page.locator("h1").inner_text() == "Sign in"
    page.fill("input[name=username]", OPERATOR)
    page.fill("input[name=password]", "not the password")
    page.click("button:has-text('Sign in')")
    assert "wrong username or password" in page.locator("p.error").inner_text()
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(live.url + target)  # back where the visit started


def test_sign_in_open_the_challenger_approve_it_and_see_the_champion_change(page: Any, live: Live) -> None:
    w = live.world
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    sign_in(page, live)
    card = page.locator(f"#project-{w.slug}")
    assert card.locator("a.champion").inner_text() == "v0"
    assert card.locator("[data-kind=drift] .badge").inner_text() == "alert"
    assert card.locator("svg.spark").count() == 11  # one per overview tile; the abuse rate is the eleventh
    page.screenshot(path=str(ARTIFACTS / "ui-overview.png"), full_page=True)

    card.locator(f"table.pending a:has-text('{w.challenger}')").click()
    page.wait_for_url(f"{live.url}/ui/p/{w.slug}/models/{w.challenger}")
    assert page.locator("#version-status").inner_text() == "candidate"
    assert page.locator("figure.loss svg polyline").count() >= 1
    assert page.locator("tr.gate").count() == 4
    assert page.locator(".cluster li").count() >= 5  # example prompts of the drift explanation
    page.screenshot(path=str(ARTIFACTS / "ui-challenger.png"), full_page=True)

    form = page.locator("#approve-form")
    form.locator("textarea[name=comment]").fill("Loss is down and the answers read well.")
    assert form.locator("input[name=promote_now]").is_checked()
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r".*\?done=approved_promoted$"))
    assert page.locator("p.notice").inner_text().startswith("Approved and promoted")
    assert page.locator("#version-status").inner_text() == "champion"
    assert page.locator("#project-champion").inner_text() == w.challenger
    promote = page.locator("tr.audit-entry[data-action=promote]")
    assert promote.locator("td.actor").inner_text() == OPERATOR
    assert promote.locator("td.reason").inner_text() == "Loss is down and the answers read well."
    assert page.locator("tr.audit-entry[data-action=approve] td.actor").inner_text() == OPERATOR
    page.screenshot(path=str(ARTIFACTS / "ui-challenger-approved.png"), full_page=True)

    page.click("header a.brand")
    assert page.locator(f"#project-{w.slug} a.champion").inner_text() == w.challenger
    assert page.locator(f"#project-{w.slug} table.pending").count() == 0
    assert status_of(live, w.challenger) == ("champion", {"champion": w.challenger})


def test_a_forged_post_without_the_csrf_token_is_refused(page: Any, live: Live) -> None:
    w = live.world
    with live.factory() as s:
        name = register_rich_challenger(s, w.project_id, data_dir=Path(live.settings.data_dir)).name
        s.commit()
    sign_in(page, live, f"/ui/p/{w.slug}/models/{name}")
    # A form posted from the signed-in browser without its token (as a forging page would send it).
    page.evaluate("document.querySelector('#reject-form input[name=csrf_token]').remove()")
    page.locator("#reject-form textarea[name=comment]").fill("forged")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.locator("#reject-form button[type=submit]").click()
    assert posted.value.status == 403
    assert "security token is missing or wrong" in page.locator("p.error").inner_text()
    # The same with the browser's cookies but a made-up token, straight over HTTP.
    forged = page.request.post(f"{live.url}/ui/p/{w.slug}/models/{name}/approve",
                               form={"comment": "forged", "csrf_token": "not-the-token", "promote_now": "true"})
    assert forged.status == 403
    assert status_of(live, name)[0] == "candidate"
    # The real form, token included, still works: the refusal was about the token only.
    page.goto(f"{live.url}/ui/p/{w.slug}/models/{name}")
    page.locator("#reject-form textarea[name=comment]").fill("superseded")
    page.locator("#reject-form button[type=submit]").click()
    page.wait_for_url(re.compile(r".*\?done=rejected$"))
    assert status_of(live, name)[0] == "rejected"


def test_the_evidently_report_downloads(page: Any, live: Live) -> None:
    w = live.world
    sign_in(page, live, f"/ui/p/{w.slug}/drift/2026-11-20T06:00:00Z")
    with page.expect_download() as download:
        page.locator("a.report[href*='drift.prompt.mmd']").click()
    saved = download.value.path()
    assert download.value.suggested_filename.endswith(".html")
    html = Path(saved).read_text(encoding="utf-8")
    assert "prompt_length" in html and "<script" in html
