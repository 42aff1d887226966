"""The operator's pages in a real browser (Chromium via Playwright) against the real collector on a Postgres
database of its own: the events explorer (filter, full-text search, open an event from a drift cluster),
acknowledging an alert and silencing its rule (then lifting the silence). Every page of the UI is
screenshotted into tests/artifacts/ (ui-page-*.png) so a person can look at them."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import func, select, text

from monitor.alerts.models import AlertAck, AlertSilence
from monitor.models import Event
from tests.ui.test_browser import ARTIFACTS, OPERATOR, Live, browser, live, page, sign_in

__all__ = ["browser", "live", "page"]  # the fixtures, shared with tests/ui/test_browser.py
pytestmark = pytest.mark.slow


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"ui-page-{name}.png"), full_page=True)


def test_explorer_filters_searches_and_opens_an_event_from_a_drift_cluster(page: Any, live: Live) -> None:
    w = live.world
    sign_in(page, live, f"/ui/p/{w.slug}/events")
    assert page.locator("tr.event").count() == 50  # a full first page, newest first
    assert page.locator("#next-page").count() == 1
    shot(page, "events")

    # Filter: the events a drift explanation put in a cluster that grew (the seed stores 10 per drifted window).
    page.locator("input[name=in_grown_cluster]").check()
    page.locator("#explorer-form button[type=submit]").click()
    page.wait_for_url(re.compile(r".*in_grown_cluster=1.*"))
    assert page.locator("tr.event").count() == 20 and page.locator("#next-page").count() == 0

    # Full-text search for a word of one stored prompt: what the browser lists is what Postgres matches.
    with live.factory() as s:
        prompt = s.scalars(select(Event.prompt).where(Event.project_id == w.project_id).order_by(Event.id)
                           .limit(1)).one()
        word = max(re.findall(r"[A-Za-z]{5,}", prompt), key=len)
        expected = s.scalar(select(func.count()).select_from(Event).where(
            Event.project_id == w.project_id,
            text("to_tsvector('english', coalesce(events.prompt, '') || ' ' || coalesce(events.response, '')) "
                 "@@ websearch_to_tsquery('english', :q)").bindparams(q=word)))
    page.goto(f"{live.url}/ui/p/{w.slug}/events")
    page.fill("input[name=q]", word)
    page.locator("#explorer-form button[type=submit]").click()
    page.wait_for_url(re.compile(r".*q=.*"))
    assert 1 <= page.locator("tr.event").count() == min(expected, 50)
    assert word.lower()[:4] in page.locator("tr.event").first.inner_text().lower()
    shot(page, "events-search")

    # From the drift window's explanation, open an example prompt's event: it names its cluster and window.
    page.goto(f"{live.url}/ui/p/{w.slug}/drift/2026-11-20T06:00:00Z")
    shot(page, "drift-window")
    example = page.locator(".cluster[data-cluster='2'] li a").first
    prompt_text = example.inner_text()
    example.click()
    page.wait_for_url(re.compile(r".*/events/\d+$"))
    assert page.locator("#event-prompt").inner_text() == prompt_text
    assert "cluster 2 of drift.prompt.mmd" in page.locator("#event-clusters").inner_text()
    shot(page, "event")
    # And the cluster's own link lists exactly its members.
    page.goto(f"{live.url}/ui/p/{w.slug}/drift/2026-11-20T06:00:00Z")
    page.locator(".cluster[data-cluster='4'] a.cluster-events").click()
    page.wait_for_url(re.compile(r".*cluster=4.*"))
    assert page.locator("tr.event").count() == 5


def test_acknowledge_then_silence_the_rule_and_lift_it(page: Any, live: Live) -> None:
    w = live.world
    sign_in(page, live, f"/ui/p/{w.slug}/alerts")
    row = page.locator(f"#alert-{w.alert_id}")
    assert "firing" in row.inner_text()
    shot(page, "alerts")
    form = page.locator("form.ack-form").first
    form.locator("input[name=comment]").fill("Travel questions from the new campaign; watching.")
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r".*done=acknowledged.*"))
    assert page.locator("p.notice").inner_text().startswith("Acknowledged")
    assert page.locator(f"#alert-{w.alert_id} .ack-badge").count() == 1
    entry = page.locator("tr.ack-entry").first
    assert entry.locator("td.actor").inner_text() == OPERATOR
    assert entry.locator("td.comment").inner_text() == "Travel questions from the new campaign; watching."

    silence = page.locator("tr.rule[data-rule='prompt-drift'] form.silence-form")
    silence.locator("select[name=duration]").select_option("1h")
    silence.locator("input[name=comment]").fill("campaign week")
    silence.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r".*done=silenced.*"))
    active = page.locator("table.silences tr.silence").first
    assert "active" in active.inner_text() and "prompt-drift" in active.inner_text()
    assert page.locator(f"#alert-{w.alert_id} .silenced-badge").count() == 1
    shot(page, "alerts-silenced")
    active.locator("form.lift-form button").click()
    page.wait_for_url(re.compile(r".*done=lifted.*"))
    assert f"lifted by {OPERATOR}" in page.locator("table.silences tr.silence").first.inner_text()
    with live.factory() as s:
        acks = s.scalars(select(AlertAck).where(AlertAck.alert_id == w.alert_id)).all()
        silences = s.scalars(select(AlertSilence).where(AlertSilence.project_id == w.project_id)).all()
    assert [a.actor for a in acks] == [OPERATOR]
    assert [(x.actor, x.lifted_by, x.comment) for x in silences] == [(OPERATOR, OPERATOR, "campaign week")]


def test_every_page_renders_and_is_screenshotted(page: Any, live: Live) -> None:
    w = live.world
    sign_in(page, live)
    pages = {"overview": "/ui/", "project": f"/ui/p/{w.slug}/", "overview-30d": f"/ui/p/{w.slug}/?range=30d",
             "drift": f"/ui/p/{w.slug}/drift", "webhooks": f"/ui/p/{w.slug}/webhooks",
             "models": f"/ui/p/{w.slug}/models", "challenger": f"/ui/p/{w.slug}/models/{w.challenger}"}
    for name, path in pages.items():
        response = page.goto(live.url + path)
        assert response.status == 200, (name, response.status)
        assert page.locator("h1").count() == 1
        body = page.locator("main").inner_text()
        assert "/tmp/" not in body and "Traceback" not in body, name  # no server paths, no errors
        shot(page, name)
    # Sparklines stay inside their cards: no svg wider than the group it is drawn in.
    page.goto(f"{live.url}/ui/p/{w.slug}/")
    overflow = page.evaluate("""() => [...document.querySelectorAll('.kind')].filter(k =>
        [...k.querySelectorAll('svg.spark')].some(s => s.getBoundingClientRect().right >
                                                       k.getBoundingClientRect().right + 0.5)).length""")
    assert overflow == 0
    page.context.clear_cookies()
    page.goto(live.url + "/ui/login")
    shot(page, "login")
