"""The settings page: every section of the project's config in a form, errors next to their field, saves
audited and visible in the recent changes, the first-1,000-events reference called out."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from monitor.models import Project
from monitor.projects.config_service import history
from monitor.projects.service import get_or_create_project
from tests.support.factories import unique_slug
from tests.support.ui_session import csrf_of


def _project(session: Session) -> Project:
    p = get_or_create_project(session, unique_slug())
    session.commit()
    return p


def test_page_shows_every_section_and_the_default_reference(ui: TestClient, session: Session) -> None:
    p = _project(session)
    page = ui.get(f"/ui/p/{p.slug}/settings")
    assert page.status_code == 200
    for section in ("windows", "reference", "drift", "safety", "feedback"):
        assert f'data-section="{section}"' in page.text
    assert 'name="window_seconds" value="3600"' in page.text
    assert "first 1,000 events" in page.text and 'name="reference.n" value="1000"' in page.text
    assert f'href="/ui/p/{p.slug}/settings"' in page.text  # in the project navigation
    assert ui.get("/ui/p/nope/settings").status_code == 404


def test_save_a_section_and_see_it_audited(ui: TestClient, session: Session) -> None:
    p = _project(session)
    page = ui.get(f"/ui/p/{p.slug}/settings")
    form = {"csrf_token": csrf_of(page.text), "window_seconds": "1800", "segment_keys": "region, plan",
            "max_segment_values": "", "min_samples": ""}
    saved = ui.post(f"/ui/p/{p.slug}/settings/windows", data=form, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    session.expire_all()
    stored = session.get(Project, p.id)
    assert stored is not None and stored.config == {"window_seconds": 1800, "segment_keys": ["region", "plan"]}
    (change,) = history(session, p.id)
    assert change.source == "ui" and change.actor.startswith("ui operator ")
    after = ui.get(saved.headers["location"])
    assert "Windows and segments saved" in after.text and "segment_keys" in after.text
    assert 'name="segment_keys" value="region, plan"' in after.text
    # The reference section: a pinned range.
    ref = {"csrf_token": csrf_of(after.text), "reference.kind": "range", "reference.start": "2026-11-01T00:00:00Z",
           "reference.end": "2026-11-02T00:00:00Z", "reference.n": "1000", "reference.model_version": ""}
    assert ui.post(f"/ui/p/{p.slug}/settings/reference", data=ref, follow_redirects=False).status_code == 303
    session.expire_all()
    stored = session.get(Project, p.id)
    assert stored is not None and stored.config["reference"]["kind"] == "range"


def test_errors_are_shown_next_to_their_field_and_nothing_is_saved(ui: TestClient, session: Session) -> None:
    p = _project(session)
    page = ui.get(f"/ui/p/{p.slug}/settings")
    form = {"csrf_token": csrf_of(page.text), "drift_methods": "mmd", "drift_fields": "prompt, title",
            "drift_alpha": "0.9", "drift_min_effect": "", "drift_calibration_blocks": "", "drift_min_samples": "",
            "drift_max_samples": ""}
    bad = ui.post(f"/ui/p/{p.slug}/settings/drift", data=form)
    assert bad.status_code == 422
    errors = dict(re.findall(r'<p class="field-error" id="f-([a-z_-]+)-error" role="alert">([^<]+)</p>', bad.text))
    assert set(errors) == {"drift_fields", "drift_alpha"}, errors
    assert "less than 0.5" in errors["drift_alpha"]
    assert 'name="drift_alpha" value="0.9"' in bad.text  # what was typed is kept for fixing
    session.expire_all()
    stored = session.get(Project, p.id)
    assert stored is not None and stored.config == {} and history(session, p.id) == []


def test_saving_needs_the_csrf_token(ui: TestClient, session: Session) -> None:
    p = _project(session)
    refused = ui.post(f"/ui/p/{p.slug}/settings/windows", data={"window_seconds": "1800"})
    assert refused.status_code == 403
    session.expire_all()
    stored = session.get(Project, p.id)
    assert stored is not None and stored.config == {}


def test_rules_that_cannot_fire_are_listed_until_the_settings_compute_their_metric(
    ui: TestClient, session: Session,
) -> None:
    from monitor.alerts.rule_service import create_rule
    from monitor.alerts.rules import RuleSpec

    p = _project(session)
    create_rule(session, p.id, RuleSpec(name="bias-gap", metric="bias.toxicity_rate.gap", comparator=">",
                                        threshold=0.1))
    create_rule(session, p.id, RuleSpec(name="volume", metric="ops.volume", comparator="<", threshold=10))
    session.commit()
    page = ui.get(f"/ui/p/{p.slug}/settings")
    warnings = re.findall(r'<li class="warning">([^<]+)</li>', page.text)
    assert len(warnings) == 1 and "bias-gap" in warnings[0] and "bias_attribute" in warnings[0], warnings
    form = {"csrf_token": csrf_of(page.text), "bias_attribute": "region", "safety_max_samples": "",
            "bias_min_group_size": "", "bias_alpha": ""}
    assert ui.post(f"/ui/p/{p.slug}/settings/safety", data=form, follow_redirects=False).status_code == 303
    assert 'class="warning"' not in ui.get(f"/ui/p/{p.slug}/settings").text
