"""Registry transitions on both backends: base v0, challengers, approve/reject/promote/rollback, the audit
trail, and the gate: a failing challenger is promoted only with an audited override and a reason."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.errors import NotFoundError
from monitor.models import Project
from monitor.projects.service import get_or_create_project
from retrain.models import AuditEntry, ModelVersion
from retrain.registry.service import (
    ConflictError,
    GateBlockedError,
    aliases_of,
    approve,
    ensure_champion,
    get_version,
    promote,
    reject,
    rollback,
)
from tests.support.factories import unique_slug
from tests.support.retrain import add_candidate, audit_actions


def test_first_champion_is_the_base_model_as_v0_once(session: Session, project: Project) -> None:
    v0 = ensure_champion(session, project.id, "smollm2")
    again = ensure_champion(session, project.id, "smollm2")
    assert (v0.id, v0.name, v0.adapter_path, v0.status) == (again.id, "v0", None, "champion")
    assert aliases_of(session, project.id) == {"champion": "v0"}
    assert audit_actions(session, project.id) == [
        ("register_base", "v0", "first version of the project's model: the base model")]


def test_challenger_promote_and_rollback_move_aliases_and_statuses(session: Session, project: Project) -> None:
    v1 = add_candidate(session, project.id, passing=True)
    assert (v1.name, v1.status) == ("v1", "candidate")
    assert aliases_of(session, project.id) == {"champion": "v0", "challenger": "v1"}

    approve(session, project.id, "v1", actor="alice", reason="looks good")
    swap = promote(session, project.id, "v1", actor="alice", reason="ship it")
    assert (swap.previous and swap.previous.name, swap.current.name) == ("v0", "v1")
    assert aliases_of(session, project.id) == {"champion": "v1"}  # the challenger alias left with it
    assert get_version(session, project.id, "v0").status == "archived"
    assert get_version(session, project.id, "champion").name == "v1"

    v2 = add_candidate(session, project.id, passing=True)
    promote(session, project.id, v2.name, actor="bob", reason="newer data")
    back = rollback(session, project.id, "v2", actor="carol", reason="complaints after the swap")
    assert (back.previous and back.previous.name, back.current.name) == ("v2", "v1")
    assert get_version(session, project.id, "v2").status == "rejected"
    assert get_version(session, project.id, "v1").status == "champion"
    # Rolling back again goes to what v1 replaced, not back to v2.
    rollback(session, project.id, actor="carol", reason="v1 was bad too")
    assert aliases_of(session, project.id)["champion"] == "v0"
    with pytest.raises(ConflictError, match="nothing to roll back"):
        rollback(session, project.id, actor="carol")

    actions = [(a, n) for a, n, _ in audit_actions(session, project.id)]
    assert actions == [("register_base", "v0"), ("register_challenger", "v1"), ("approve", "v1"),
                       ("promote", "v1"), ("register_challenger", "v2"), ("promote", "v2"), ("rollback", "v1"),
                       ("rollback", "v0")]
    entry = session.scalars(select(AuditEntry).where(AuditEntry.project_id == project.id,
                                                     AuditEntry.action == "promote")).first()
    assert entry is not None and entry.actor == "alice" and entry.reason == "ship it" and entry.at is not None
    assert entry.details["from"] == "v0" and entry.details["override"] is False


def test_gate_failure_blocks_promotion_without_an_audited_override(session: Session, project: Project) -> None:
    v1 = add_candidate(session, project.id, passing=False)
    assert v1.gates_passed is False
    with pytest.raises(GateBlockedError, match="toxicity_rate"):
        promote(session, project.id, "v1", actor="mallory", reason="just do it")
    with pytest.raises(GateBlockedError):
        approve(session, project.id, "v1", actor="mallory")
    with pytest.raises(ConflictError, match="needs a reason"):
        promote(session, project.id, "v1", actor="mallory", override=True, reason="  ")
    # Nothing moved, nothing recorded by the refused attempts.
    assert aliases_of(session, project.id) == {"champion": "v0", "challenger": "v1"}
    assert [a for a, _, _ in audit_actions(session, project.id)] == ["register_base", "register_challenger"]

    promote(session, project.id, "v1", actor="dana", override=True, reason="toxicity scorer misfires on 'kill'")
    assert aliases_of(session, project.id) == {"champion": "v1"}
    entry = session.scalars(select(AuditEntry).where(AuditEntry.project_id == project.id)
                            .order_by(AuditEntry.id.desc())).first()
    assert entry is not None
    assert (entry.action, entry.actor, entry.reason) == ("promote_override", "dana",
                                                         "toxicity scorer misfires on 'kill'")
    assert entry.details["override"] is True and entry.details["failed_gates"] == ["toxicity_rate"]


def test_reject_and_invalid_transitions(session: Session, project: Project) -> None:
    v1 = add_candidate(session, project.id, passing=True)
    reject(session, project.id, v1.name, actor="erin", reason="off-topic answers")
    assert get_version(session, project.id, "v1").status == "rejected"
    assert "challenger" not in aliases_of(session, project.id)
    with pytest.raises(ConflictError, match="rejected"):
        promote(session, project.id, "v1", actor="erin")
    with pytest.raises(ConflictError, match="only a candidate"):
        approve(session, project.id, "v1", actor="erin")
    with pytest.raises(ConflictError, match="already the champion"):
        promote(session, project.id, "v0", actor="erin")
    with pytest.raises(ConflictError, match="not the champion"):
        rollback(session, project.id, "v1", actor="erin")
    with pytest.raises(NotFoundError, match="no model version 'v9'"):
        get_version(session, project.id, "v9")


def test_versions_are_scoped_to_their_project(session: Session, project: Project) -> None:
    add_candidate(session, project.id, passing=True)
    other = get_or_create_project(session, unique_slug())
    session.flush()
    with pytest.raises(NotFoundError):
        get_version(session, other.id, "v1")
    assert ensure_champion(session, other.id, "smollm2").name == "v0"
    assert session.scalars(select(ModelVersion.name).where(ModelVersion.project_id == other.id)).all() == ["v0"]
