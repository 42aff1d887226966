"""The pages show what a decision needs, from real rows (both backends): overview, alerts, webhooks with
redelivery, a window's drift, the challenger page and the versions list."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from monitor.pipeline.ops import MetricPoint
from monitor.pipeline.store import upsert_points
from monitor.projects.service import get_or_create_project
from monitor.settings import Settings
from retrain.registry.service import get_version
from retrain.ui.pages import tidy_answer
from tests.support.factories import unique_slug
from tests.support.ui_seed import T0, World, seed_world
from tests.support.ui_session import csrf_of
from tests.support.webhook_receiver import Receiver


@pytest.fixture
def world(session_maker: sessionmaker[Session], settings: Settings, receiver: Receiver) -> World:
    return seed_world(session_maker, settings, slug=unique_slug("ui"), receiver_url=receiver.url)


def text_of(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def card(html: str, slug: str) -> str:
    start = html.index(f'id="project-{slug}"')
    end = html.find('<section class="card project"', start)
    return html[start:end if end > 0 else None]


def test_overview_shows_status_sparklines_alerts_champion_and_pending(ui: TestClient, world: World) -> None:
    html = card(ui.get("/ui/").text, world.slug)
    kinds = dict(re.findall(r'data-kind="(\w+)">\s*<h3>\w+ <span class="badge [^"]+">([^<]+)</span>', html))
    # The drift group shows the firing alert; the other groups are computed and quiet.
    assert kinds == {"drift": "alert", "toxicity": "ok", "bias": "ok", "ops": "ok"}
    # 2 drift + 3 toxicity (toxic responses, toxic prompts, abusive responses) + 2 bias + 4 ops tiles.
    assert html.count('<svg class="spark"') == 11
    assert "abusive responses (profanity)" in html
    # The prompt-drift sparkline marks exactly the two drifted windows.
    prompt_row = html[html.index("prompt drift (mmd)"):html.index("response drift (mmd)")]
    assert prompt_row.count('class="flagged"') == 2
    text = text_of(html)
    assert "prompt-drift on drift.prompt.mmd (all)" in text
    assert re.search(r"Champion: v0\b", text)
    assert f'href="/ui/p/{world.slug}/models/{world.challenger}"' in html and "candidate" in text


def test_overview_units_insufficient_bias_hint_and_time_range(ui: TestClient, world: World,
                                                              session_maker: sessionmaker[Session]) -> None:
    html = card(ui.get(f"/ui/p/{world.slug}/").text, world.slug)
    text = text_of(html)
    assert re.search(r"toxic responses \d+(\.\d+)?%", text) and re.search(r"latency p95 \(ms\) \d+ ms", text)
    assert re.search(r"toxicity gap \d+(\.\d+)? pp", text)
    # A project whose bias metric could not be computed says so (not "ok"), with the reason; a project without
    # a bias attribute is told how to enable bias.
    other = unique_slug("ui")
    with session_maker() as s:
        p = get_or_create_project(s, other)
        upsert_points(s, p.id, "all", T0, T0 + timedelta(hours=1), [
            MetricPoint("bias.toxicity_rate.gap", "ok", 60, value=0.01, p_value=0.7, flagged=False),
            MetricPoint("bias.sentiment.gap", "insufficient", 12,
                        details={"reason": "1 group(s) with at least 30 events; need 2"})])
        s.commit()
    bias = card(ui.get(f"/ui/p/{other}/").text, other)
    kinds = dict(re.findall(r'data-kind="(\w+)">\s*<h3>\w+ <span class="badge [^"]+">([^<]+)</span>', bias))
    assert kinds["bias"] == "insufficient" and kinds["drift"] == "no data"
    assert "1 group(s) with at least 30 events; need 2" in text_of(bias)
    fresh = unique_slug("ui")
    with session_maker() as s:
        get_or_create_project(s, fresh)
        s.commit()
    assert "set the project's bias_attribute" in text_of(card(ui.get(f"/ui/p/{fresh}/").text, fresh))
    # The range picks the windows shown: before the seeded windows there is nothing.
    early = card(ui.get(f"/ui/p/{world.slug}/?to=2026-11-19T00:00").text, world.slug)
    assert "latest computed window: —" in text_of(early)
    assert ui.get(f"/ui/p/{world.slug}/drift?from=2026-11-20T06:00").text.count("/events?window=") == 2


def test_alerts_page_lists_the_alert_with_its_transitions_and_values(ui: TestClient, world: World) -> None:
    html = ui.get(f"/ui/p/{world.slug}/alerts").text
    assert f'id="alert-{world.alert_id}"' in html
    text = text_of(html)
    assert "prompt-drift" in text and "firing" in text and "inactive → firing" in text
    assert "p-value 0.001 (threshold 0.01), effect size 0.09, n=30" in text  # values with their meaning
    assert "1 transition," in text or "1 transition " in text or text.count("history: 1 transition") == 1
    # The rules themselves, each with a silence form; the alert links to its window's events.
    assert 'data-rule="prompt-drift"' in html and "silence-form" in html
    assert f"/ui/p/{world.slug}/events?window=2026-11-20T06:00:00Z" in html
    assert ui.get(f"/ui/p/{world.slug}/alerts?range=30d").status_code == 200
    assert ui.get(f"/ui/p/{world.slug}/alerts?from=2026-11-21T00:00").text.count('id="alert-') == 1  # still open
    assert ui.get(f"/ui/p/{world.slug}/alerts?from=yesterday").status_code == 422
    assert f"/ui/p/{world.slug}/drift/2026-11-20T06:00:00Z" in html
    assert ui.get(f"/ui/p/{world.slug}/alerts?status=resolved").text.count('id="alert-') == 0
    assert ui.get(f"/ui/p/{world.slug}/alerts?status=exploded").status_code == 422


def test_toxicity_alert_links_to_events_at_the_active_scorers_threshold(ui: TestClient, world: World,
                                                                        session_maker: sessionmaker[Session]) -> None:
    """The "scored toxic" link filters the explorer at the threshold the safety stage counts toxic at (the
    default scorer's calibrated 0.945), not at 0.5, which would list many texts the rate never counted."""
    from monitor.alerts.models import Alert
    from monitor.alerts.rule_service import create_rule
    from monitor.alerts.rules import RuleSpec
    from monitor.safety.toxicity import DEFAULT_TOXICITY_SCORER, active_threshold, get_scorer, threshold_for

    with session_maker() as s:
        rule = create_rule(s, world.project_id, RuleSpec(name="toxic-answers", metric="safety.toxicity_rate.response",
                                                         field="value", comparator=">", threshold=0.05))
        s.flush()
        s.add(Alert(project_id=world.project_id, rule_id=rule.id, rule_name=rule.name, metric=rule.metric,
                    segment="all", severity="warning", status="firing", started_window=world.drift_window,
                    fired_window=world.drift_window, last_window=world.drift_window))
        s.commit()
    html = ui.get(f"/ui/p/{world.slug}/alerts").text
    expected = threshold_for(get_scorer(DEFAULT_TOXICITY_SCORER))
    assert expected > 0.9 and active_threshold(DEFAULT_TOXICITY_SCORER) == expected
    links = re.findall(r'href="([^"]*toxicity_min=[^"]*)"', html)
    assert links and all(f"toxicity_min={expected}&amp;" in link for link in links), links
    assert "toxicity_min=0.5&amp;" not in html
    # A configured threshold wins; model-loading backends without their own threshold are not built for it.
    assert active_threshold(DEFAULT_TOXICITY_SCORER, 0.7) == 0.7
    assert active_threshold("hf:/nonexistent/model") == 0.5


def test_webhook_log_and_redelivery(ui: TestClient, world: World, receiver: Receiver) -> None:
    page = ui.get(f"/ui/p/{world.slug}/webhooks")
    [delivery_id] = re.findall(r'id="delivery-(\d+)" data-status="succeeded"', page.text)
    assert "alert.firing" in page.text and receiver.count() == 1
    r = ui.post(f"/ui/p/{world.slug}/webhooks/deliveries/{delivery_id}/redeliver",
                data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303
    after = ui.get(r.headers["location"])
    assert "Redelivery sent" in after.text and receiver.count() == 2
    row = after.text[after.text.index(f'id="delivery-{delivery_id}"'):]
    assert re.search(r'class="num attempts">2<', row)
    assert ">manual<" in row and ">auto<" in row
    missing = ui.post(f"/ui/p/{world.slug}/webhooks/deliveries/999999/redeliver",
                      data={"csrf_token": csrf_of(page.text)})
    assert missing.status_code == 404 and "no webhook delivery 999999" in missing.text
    assert receiver.count() == 2


def test_drift_windows_list_links_every_window(ui: TestClient, world: World) -> None:
    html = ui.get(f"/ui/p/{world.slug}/drift").text
    windows = re.findall(r'<a href="/ui/p/[^/]+/drift/([^"]+)">', html)
    assert windows == [f"2026-11-20T{h:02d}:00:00Z" for h in range(7, -1, -1)]
    assert html.count("2 drifting") == 2 and html.count(">none<") == 6


def test_drift_window_page_shows_explanation_clusters_with_prompts(ui: TestClient, world: World) -> None:
    html = ui.get(f"/ui/p/{world.slug}/drift/2026-11-20T06:00:00Z").text
    text = text_of(html)
    assert "What grew: drift.prompt.mmd" in text and "0.0% → 48.0%" in text
    # The calibration table: λ, its interval, the score needed, calibrated and BH-adjusted p, the source.
    assert "Calibration" in text and 'class="list calibration"' in html
    row = r"drift\.prompt\.mmd\s+2\.5\s+1\.4\u20133\.9\s+3\.68\s+0\.001\s+0\.002\s+reference_blocks\s+1000\s+16 x 125"
    assert re.search(row, text), text
    assert len(re.findall(r'<div class="cluster"', html)) == 2
    assert re.search(r"<li><a href=\"/ui/p/[^\"]+/events/\d+\">[^<]*(recipe|bake|cook|visit|itinerary|pack|museum|"
                     r"wine|visa|substitute|fresh|get around)[^<]*</a></li>", html, re.I)  # examples open their event
    # Each cluster opens its member events in the explorer.
    link = re.search(r'class="cluster-events" href="([^"]+)"', html)
    assert link is not None
    events = ui.get(link.group(1).replace("&amp;", "&")).text
    assert len(re.findall(r'<tr class="event"', events)) == 5
    assert f'/ui/p/{world.slug}/drift/drift.prompt.mmd/2026-11-20T06:00:00Z/report.html' in html
    assert ui.get(f"/ui/p/{world.slug}/drift/2026-11-20T05:00:00Z").text.count("What grew") == 0
    assert ui.get(f"/ui/p/{world.slug}/drift/2030-01-01T00:00:00Z").status_code == 404
    bad = ui.get(f"/ui/p/{world.slug}/drift/yesterday")
    assert bad.status_code == 422 and "ISO 8601" in bad.text


def world_data_dir(v: Any) -> str:
    return str(v.dataset_path).rsplit("/", 2)[0]


def test_answers_cut_at_the_token_limit_end_at_a_sentence_and_say_so() -> None:
    assert tidy_answer("Open Settings. Then choose Secur") == {"text": "Open Settings.", "cut": True}
    assert tidy_answer("Open Settings, then choose") == {"text": "Open Settings, then choose", "cut": True}
    assert tidy_answer("Open Settings. Done!") == {"text": "Open Settings. Done!", "cut": False}
    assert tidy_answer(None) == {"text": None, "cut": False}


def test_challenger_page_shows_why_data_training_evaluation_and_answers(ui: TestClient, world: World,
                                                                        session: Session) -> None:
    html = ui.get(f"/ui/p/{world.slug}/models/{world.challenger}").text
    text = text_of(html)
    v = get_version(session, world.project_id, world.challenger)
    # Why: the alert, its values, and the drift explanation's example prompts.
    assert "rule prompt-drift on drift.prompt.mmd (all)" in text and f"alert {world.alert_id}" in text
    assert "p_value < 0.01" in text and "observed 0.001" in text
    assert f"/ui/p/{world.slug}/drift/drift.prompt.mmd/2026-11-20T06:00:00Z/report.html" in html
    assert "Drift explanation" in text and html.count('<div class="cluster"') == 2
    # Training data: hash, counts, examples read back from the stored file (hash verified).
    assert v.dataset_hash and v.dataset_hash in html
    assert f"{v.dataset_stats['train']} for training, {v.dataset_stats['eval']} held out" in text
    assert html.count('<tr class="example">') >= 5 and "does not match" not in text
    assert html.count(f'class="example-event" href="/ui/p/{world.slug}/events?event_id=') >= 5  # each its event
    assert "/tmp/" not in text and str(world_data_dir(v)) not in text  # no absolute server paths
    # The loss curve: one polyline per series, one point per step.
    loss = html[html.index('<figure class="loss">'):html.index("</figure>")]
    points = re.search(r'data-series="loss"[^>]*points="([^"]+)"', loss)
    assert points and len(points.group(1).split()) == len(v.train_losses) == 60
    # Evaluation beside the champion, each gate's verdict, answers of both models.
    assert "held-out loss (nats/token) 2.41 2.07 better" in text
    assert re.findall(r'data-gate="(\w+)"', html) == ["eval_loss", "toxicity_rate", "bias_gap", "similarity"]
    assert html.count('class="gate gate-passed"') == 4
    # Each paired gate shows its increase with the interval and the number of units behind it.
    tox = html[html.index('data-gate="toxicity_rate"'):html.index('data-gate="bias_gap"')]
    assert re.search(r'class="num interval">[^<]*\[[^<]*,[^<]*\] <span class="quiet">n=200</span>', tox), tox
    bias = html[html.index('data-gate="bias_gap"'):html.index('data-gate="similarity"')]
    assert re.search(r'class="num interval">[^<]*\[[^<]*,[^<]*\] <span class="quiet">n=\d+</span>', bias), bias
    assert text.count("[champion]") == 3 and text.count("[challenger]") == 3
    # The project's evaluators on both models' answers: the champion refused 2 of 6, this version none.
    table = html[html.index('class="list evaluator-scores"'):]
    table = table[:table.index("</table>")]
    assert re.findall(r'data-evaluator="(\w+)"', table) == ["degenerate", "refusal"]
    refusal = text_of(table)[text_of(table).index("refusal"):]
    assert re.match(r"refusal [\d.]+ \(0.3333\) 0 \(0\) better 6", refusal), refusal  # mean (flagged share), n
    assert text.count("(cut at the generation limit)") == 6  # seeded answers stop mid-sentence: marked
    # Decisions on offer for a candidate, and the trail so far.
    assert 'id="approve-form"' in html and 'id="reject-form"' in html and 'id="promote-form"' not in html
    assert 'data-action="register_challenger"' in html


def test_gate_failures_are_shown_and_the_override_is_offered(ui: TestClient, session_maker: sessionmaker[Session],
                                                             settings: Settings) -> None:
    w = seed_world(session_maker, settings, slug=unique_slug("ui"), passing=False)
    html = ui.get(f"/ui/p/{w.slug}/models/{w.challenger}").text
    assert 'class="gate gate-failed" data-gate="toxicity_rate"' in html
    assert "failed: toxicity_rate" in text_of(html)
    approve = html[html.index('id="approve-form"'):html.index("</form>", html.index('id="approve-form"'))]
    assert 'name="override"' in approve and 'name="confirm"' in approve


def test_versions_page_and_missing_things(ui: TestClient, world: World) -> None:
    html = ui.get(f"/ui/p/{world.slug}/models").text
    versions, audit = html.split("<h2>Audit log</h2>")
    assert "register_challenger" in audit and "register_base" in audit
    assert re.findall(r'<a href="/ui/p/[^/]+/models/(v\d+)">v\d+</a></td>', versions) == [world.challenger, "v0"]
    assert ui.get(f"/ui/p/{world.slug}/models/challenger").status_code == 200
    missing = ui.get(f"/ui/p/{world.slug}/models/v99")
    assert missing.status_code == 404 and "no model version 'v99'" in unescape(missing.text)
    assert ui.get("/ui/p/no-such-project/alerts").status_code == 404
    assert ui.get("/ui/p/Bad Slug/alerts").status_code in (404, 422)


def test_a_services_error_under_ui_is_the_ui_error_page(ui: TestClient) -> None:
    # One handler for the error vocabulary (monitor/api/errors.py): a NotFoundError that a UI route lets through
    # is the UI's error page with the status the API would answer.
    page = ui.get("/ui/p/no-such-project/events/1")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>Not found</h1>" in page.text and "no-such-project" in unescape(page.text)
    assert page.headers["content-security-policy"].startswith("default-src 'self'")  # the UI's headers too
