"""Decisions taken in the UI (both backends): each goes through the registry, is audited with the signed-in
operator as actor, and bad input or a refused decision changes nothing and says why."""

from __future__ import annotations

from html import unescape

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from monitor.models import Project
from monitor.projects.service import get_or_create_project
from retrain.registry.service import aliases_of, get_version
from tests.support.factories import unique_slug
from tests.support.retrain import add_candidate, audit_actions
from tests.support.ui_session import csrf_of


@pytest.fixture
def project(session: Session) -> Project:
    p = get_or_create_project(session, unique_slug("ui"))
    session.commit()
    return p


def decide(ui: TestClient, project: Project, version: str, decision: str, **form: str):  # type: ignore[no-untyped-def]
    page = ui.get(f"/ui/p/{project.slug}/models/{version}")
    return ui.post(f"/ui/p/{project.slug}/models/{version}/{decision}",
                   data={"csrf_token": csrf_of(page.text), **form}, follow_redirects=False)


def state(session: Session, project: Project, name: str) -> tuple[str, dict[str, str], list[tuple[str, str | None,
                                                                                                   str | None]]]:
    session.expire_all()
    return get_version(session, project.id, name).status, aliases_of(session, project.id), audit_actions(session,
                                                                                                         project.id)


def test_approve_and_promote_changes_the_champion_with_an_audited_comment(ui: TestClient, session: Session,
                                                                          project: Project, operator: str) -> None:
    v = add_candidate(session, project.id, passing=True)
    session.commit()
    r = decide(ui, project, v.name, "approve", comment="loss is down, answers read well", promote_now="true")
    assert r.status_code == 303 and r.headers["location"].endswith(f"/models/{v.name}?done=approved_promoted")
    status, aliases, actions = state(session, project, v.name)
    assert status == "champion" and aliases == {"champion": v.name}
    assert actions[-2:] == [("approve", v.name, "loss is down, answers read well"),
                            ("promote", v.name, "loss is down, answers read well")]
    page = ui.get(r.headers["location"]).text
    assert "Approved and promoted" in page and 'id="version-status">champion' in page
    entries = page[page.index("<h2>Audit log</h2>"):]
    assert entries.count(f'<td class="actor">{operator}</td>') == 2
    # the authenticated principal is shown beside the label (issue #18 finding 4)
    assert entries.count(f'<td class="principal">operator {operator}</td>') == 2
    assert 'data-action="promote"' in entries and 'data-action="approve"' in entries
    assert 'id="rollback-form"' in page  # the new champion can be rolled back to v0


def test_approve_only_then_promote_later(ui: TestClient, session: Session, project: Project) -> None:
    v = add_candidate(session, project.id, passing=True)
    session.commit()
    assert decide(ui, project, v.name, "approve", comment="fine by me").status_code == 303
    status, aliases, _ = state(session, project, v.name)
    assert status == "approved" and aliases["champion"] == "v0"
    assert decide(ui, project, v.name, "promote", comment="Monday release").status_code == 303
    status, aliases, actions = state(session, project, v.name)
    assert status == "champion" and aliases["champion"] == v.name and actions[-1] == ("promote", v.name,
                                                                                       "Monday release")


def test_reject_needs_a_reason(ui: TestClient, session: Session, project: Project) -> None:
    v = add_candidate(session, project.id, passing=True)
    session.commit()
    before = state(session, project, v.name)
    r = decide(ui, project, v.name, "reject", comment="   ")
    assert r.status_code == 422 and "reason: required" in unescape(r.text)
    assert state(session, project, v.name) == before
    r = decide(ui, project, v.name, "reject", comment="answers too long")
    assert r.status_code == 303
    status, aliases, actions = state(session, project, v.name)
    assert status == "rejected" and "challenger" not in aliases and actions[-1] == ("reject", v.name,
                                                                                     "answers too long")
    page = ui.get(f"/ui/p/{project.slug}/models/{v.name}").text
    assert "<h2>Decide</h2>" not in page  # nothing left to decide
    again = decide(ui, project, v.name, "approve", comment="changed my mind")
    assert again.status_code == 409 and "only a candidate can be approved" in unescape(again.text)


def test_a_gate_failed_version_is_not_approved_without_an_override(ui: TestClient, session: Session,
                                                                   project: Project) -> None:
    v = add_candidate(session, project.id, passing=False)
    session.commit()
    before = state(session, project, v.name)
    r = decide(ui, project, v.name, "approve", comment="ship it", promote_now="true")
    text = unescape(r.text)
    assert r.status_code == 409 and "failed its evaluation gates (toxicity_rate)" in text
    assert "approved, but" not in text
    assert state(session, project, v.name) == before


@pytest.mark.parametrize("typed", ["", "v2", "V1 ", "yes"])
def test_an_override_needs_the_typed_version_name(ui: TestClient, session: Session, project: Project,
                                                  typed: str) -> None:
    v = add_candidate(session, project.id, passing=False)
    session.commit()
    before = state(session, project, v.name)
    r = decide(ui, project, v.name, "approve", comment="toxicity is a scorer artefact", override="true",
               confirm=typed, promote_now="true")
    assert r.status_code == 422 and f"type the version name '{v.name}' exactly" in unescape(r.text)
    assert 'value="toxicity is a scorer artefact"' in r.text or "toxicity is a scorer artefact</textarea>" in r.text
    assert state(session, project, v.name) == before


def test_a_confirmation_without_the_override_box_is_refused(ui: TestClient, session: Session,
                                                            project: Project) -> None:
    v = add_candidate(session, project.id, passing=False)
    session.commit()
    before = state(session, project, v.name)
    r = decide(ui, project, v.name, "approve", comment="x", confirm=v.name)
    assert r.status_code == 422 and "override: tick" in unescape(r.text)
    assert state(session, project, v.name) == before


def test_override_with_confirmation_and_reason_promotes_and_is_audited(ui: TestClient, session: Session,
                                                                       project: Project) -> None:
    v = add_candidate(session, project.id, passing=False)
    session.commit()
    r = decide(ui, project, v.name, "approve", comment="toxicity is a scorer artefact", override="true",
               confirm=v.name, promote_now="true")
    assert r.status_code == 303
    status, aliases, actions = state(session, project, v.name)
    assert status == "champion" and aliases["champion"] == v.name
    assert [a for a, _, _ in actions[-2:]] == ["approve_override", "promote_override"]


def test_rollback_restores_the_previous_champion(ui: TestClient, session: Session, project: Project) -> None:
    v = add_candidate(session, project.id, passing=True)
    session.commit()
    assert decide(ui, project, v.name, "approve", comment="ok", promote_now="true").status_code == 303
    r = decide(ui, project, v.name, "rollback", comment="users complain about tone")
    assert r.status_code == 303 and r.headers["location"].endswith("?done=rolled_back")
    status, aliases, actions = state(session, project, v.name)
    assert status == "rejected" and aliases["champion"] == "v0"
    assert actions[-1] == ("rollback", "v0", "users complain about tone")
    page = ui.get(r.headers["location"]).text
    # The version's own page shows the rollback that moved the champion away from it.
    assert 'data-action="rollback"' in page and "users complain about tone" in page
    assert ">v0</a>" in page[page.index('id="project-champion"') - 60:page.index('id="project-champion"') + 80]


def test_rollback_of_a_version_that_is_not_champion_is_refused(ui: TestClient, session: Session,
                                                               project: Project) -> None:
    v = add_candidate(session, project.id, passing=True)
    session.commit()
    r = decide(ui, project, v.name, "rollback", comment="why not")
    assert r.status_code == 409 and "only the champion can be rolled back" in unescape(r.text)
    assert state(session, project, v.name)[0] == "candidate"


def test_unknown_decision_or_version(ui: TestClient, session: Session, project: Project) -> None:
    v = add_candidate(session, project.id, passing=True)
    session.commit()
    token = csrf_of(ui.get(f"/ui/p/{project.slug}/models/{v.name}").text)
    assert ui.post(f"/ui/p/{project.slug}/models/{v.name}/delete", data={"csrf_token": token,
                                                                         "comment": "x"}).status_code == 422
    missing = ui.post(f"/ui/p/{project.slug}/models/v42/reject", data={"csrf_token": token, "comment": "x"})
    assert missing.status_code == 404
    assert state(session, project, v.name)[0] == "candidate"
