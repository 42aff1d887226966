"""The model registry: versions, the `champion`/`challenger` aliases, status changes, and their audit trail.

Service functions take the session first and never commit (the API request, CLI command or job stage that
called them commits once). Every change writes one `audit_log` row in the same transaction, so a change and
its record stand or fall together.

Statuses: candidate (a new challenger, awaiting a person) → approved → champion → archived (replaced by a
newer champion); candidate/approved → rejected; champion → rejected by a rollback. A version whose gates
failed can only be approved or promoted with `override=True` and a reason, recorded as `*_override`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor import principals
from monitor.db import utcnow
from monitor.errors import ConflictError, NotFoundError
from monitor.principals import Principal
from retrain.jobs import alerting
from retrain.models import AuditEntry, ModelAlias, ModelVersion

PROMOTABLE = ("candidate", "approved", "archived")


class GateBlockedError(ConflictError):
    """The version failed its evaluation gates; only an explicit, audited override may pass it."""


@dataclass(frozen=True)
class VersionRef:
    id: int
    name: str
    base_model: str
    adapter_path: str | None


@dataclass(frozen=True)
class Swap:
    """A champion change, as the serving hook and events need it (plain values, usable after commit)."""

    project_id: int
    action: str  # promote | rollback
    previous: VersionRef | None
    current: VersionRef
    actor: str
    reason: str | None
    principal: str | None = None  # who the server authenticated (monitor/principals.py)


def _ref(v: ModelVersion) -> VersionRef:
    return VersionRef(v.id, v.name, v.base_model, v.adapter_path)


def audit(session: Session, project_id: int, *, actor: str, action: str, version_id: int | None = None,
          reason: str | None = None, details: dict[str, Any] | None = None,
          principal: Principal | None = None) -> AuditEntry:
    """One audit entry: `actor` is the caller's free-text label, `principal` who the server authenticated."""
    entry = AuditEntry(project_id=project_id, at=utcnow(), actor=actor, action=action, version_id=version_id,
                       reason=reason, details=details or {},
                       principal=str(principal) if principal is not None else None)
    session.add(entry)
    session.flush()
    return entry


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def alias_target(session: Session, project_id: int, alias: str, *, lock: bool = False) -> ModelVersion | None:
    stmt = select(ModelAlias).where(ModelAlias.project_id == project_id, ModelAlias.alias == alias)
    if lock and _is_pg(session):
        stmt = stmt.with_for_update()  # two promotions of one project queue up instead of racing
    row = session.scalars(stmt).first()
    return None if row is None else session.get(ModelVersion, row.version_id)


def aliases_of(session: Session, project_id: int) -> dict[str, str]:
    """alias → version name."""
    stmt = (select(ModelAlias.alias, ModelVersion.name)
            .join(ModelVersion, ModelVersion.id == ModelAlias.version_id)
            .where(ModelAlias.project_id == project_id))
    return {alias: name for alias, name in session.execute(stmt).all()}


def _set_alias(session: Session, project_id: int, alias: str, version: ModelVersion) -> None:
    row = session.get(ModelAlias, (project_id, alias))
    if row is None:
        session.add(ModelAlias(project_id=project_id, alias=alias, version_id=version.id, updated_at=utcnow()))
    else:
        row.version_id, row.updated_at = version.id, utcnow()
    session.flush()


def _clear_alias_if(session: Session, project_id: int, alias: str, version: ModelVersion) -> None:
    row = session.get(ModelAlias, (project_id, alias))
    if row is not None and row.version_id == version.id:
        session.delete(row)
        session.flush()


def next_version_name(session: Session, project_id: int) -> str:
    names = session.scalars(select(ModelVersion.name).where(ModelVersion.project_id == project_id)).all()
    numbers = [int(m.group(1)) for n in names if (m := re.fullmatch(r"v(\d+)", n))]
    return f"v{max(numbers) + 1 if numbers else 0}"


def ensure_champion(session: Session, project_id: int, base_model: str, *, actor: str = "system") -> ModelVersion:
    """The project's champion; on first need, the base model itself registered as `v0` (no adapter)."""
    current = alias_target(session, project_id, "champion")
    if current is not None:
        return current
    try:
        with session.begin_nested():
            now = utcnow()
            v0 = ModelVersion(project_id=project_id, name=next_version_name(session, project_id),
                              base_model=base_model, status="champion", created_by=actor, created_at=now,
                              updated_at=now, dataset_stats={}, hyperparams={}, train_losses=[], eval_results={},
                              gate_results=[], trigger={})
            session.add(v0)
            session.flush()
            _set_alias(session, project_id, "champion", v0)
            audit(session, project_id, actor=actor, action="register_base", version_id=v0.id,
                  principal=principals.system(actor),
                  reason="first version of the project's model: the base model", details={"base_model": base_model})
        return v0
    except IntegrityError:  # another process registered it first
        current = alias_target(session, project_id, "champion")
        if current is None:
            raise
        return current


def register_challenger(session: Session, project_id: int, *, actor: str, job_id: int | None,
                        fields: dict[str, Any], gate_summary: str) -> ModelVersion:
    """A new candidate version, pointed to by `challenger`, with its audit entry. Unique per job."""
    now = utcnow()
    version = ModelVersion(project_id=project_id, name=next_version_name(session, project_id), job_id=job_id,
                           status="candidate", created_by=actor, created_at=now, updated_at=now, **fields)
    session.add(version)
    session.flush()
    _set_alias(session, project_id, "challenger", version)
    audit(session, project_id, actor=actor, action="register_challenger", version_id=version.id,
          principal=principals.system("retrain-job"),
          reason=gate_summary, details={"job_id": job_id, "gates_passed": version.gates_passed,
                                        "dataset_hash": version.dataset_hash})
    return version


def list_versions(session: Session, project_id: int) -> list[ModelVersion]:
    stmt = select(ModelVersion).where(ModelVersion.project_id == project_id).order_by(ModelVersion.id.desc())
    return list(session.scalars(stmt))


def get_version(session: Session, project_id: int, name: str) -> ModelVersion:
    """By name (`v3`) or alias (`champion`, `challenger`)."""
    if name in ("champion", "challenger"):
        version = alias_target(session, project_id, name)
        if version is None:
            raise NotFoundError(f"this project has no {name} yet")
        return version
    version = session.scalars(select(ModelVersion).where(ModelVersion.project_id == project_id,
                                                         ModelVersion.name == name)).first()
    if version is None:
        raise NotFoundError(f"no model version {name!r} in this project")
    return version


def _check_gates(version: ModelVersion, override: bool, reason: str | None, verb: str) -> list[str]:
    failed = [g["name"] for g in version.gate_results if not g.get("passed", True)]
    if version.gates_passed is False:
        if not override:
            raise GateBlockedError(
                f"{version.name} failed its evaluation gates ({', '.join(failed) or 'see gate_results'}); "
                f"to {verb} it anyway, override with a reason (CLI `--override --reason ...`, API "
                f"`\"override\": true` and `\"reason\"`, UI: the override form); the override is audited")
        if not (reason and reason.strip()):
            raise ConflictError(f"an override needs a reason: say why {version.name} may be {verb}d despite "
                                f"failing {', '.join(failed)}")
    return failed


def _set_status(version: ModelVersion, status: str, reason: str | None) -> None:
    version.status, version.status_reason, version.updated_at = status, reason, utcnow()


def approve(session: Session, project_id: int, name: str, *, actor: str, reason: str | None = None,
            override: bool = False, principal: Principal | None = None) -> ModelVersion:
    version = get_version(session, project_id, name)
    if version.status != "candidate":
        raise ConflictError(f"{version.name} is {version.status}; only a candidate can be approved")
    failed = _check_gates(version, override, reason, "approve")
    _set_status(version, "approved", reason)
    overridden = version.gates_passed is False
    audit(session, project_id, actor=actor, action="approve_override" if overridden else "approve",
          version_id=version.id, reason=reason, details={"override": overridden, "failed_gates": failed},
          principal=principal)
    return version


def reject(session: Session, project_id: int, name: str, *, actor: str, reason: str | None = None,
           principal: Principal | None = None) -> ModelVersion:
    version = get_version(session, project_id, name)
    if version.status not in ("candidate", "approved"):
        raise ConflictError(f"{version.name} is {version.status}; only a candidate or approved version can be "
                            "rejected (roll back a champion instead)")
    _set_status(version, "rejected", reason)
    _clear_alias_if(session, project_id, "challenger", version)
    audit(session, project_id, actor=actor, action="reject", version_id=version.id, reason=reason,
          principal=principal)
    return version


def promote(session: Session, project_id: int, name: str, *, actor: str, reason: str | None = None,
            override: bool = False, principal: Principal | None = None) -> Swap:
    """Move `champion` to this version in the caller's transaction; the old champion is archived."""
    previous = alias_target(session, project_id, "champion", lock=True)
    version = get_version(session, project_id, name)
    if previous is not None and previous.id == version.id:
        raise ConflictError(f"{version.name} is already the champion")
    if version.status not in PROMOTABLE:
        raise ConflictError(f"{version.name} is {version.status}; only {', '.join(PROMOTABLE)} versions can be "
                            "promoted")
    failed = _check_gates(version, override, reason, "promote")
    overridden = version.gates_passed is False
    if previous is not None:
        _set_status(previous, "archived", f"replaced by {version.name}")
    _set_status(version, "champion", reason)
    _set_alias(session, project_id, "champion", version)
    _clear_alias_if(session, project_id, "challenger", version)
    details = {"from_version_id": previous.id if previous else None, "from": previous.name if previous else None,
               "to": version.name, "override": overridden, "failed_gates": failed}
    audit(session, project_id, actor=actor, action="promote_override" if overridden else "promote",
          version_id=version.id, reason=reason, details=details, principal=principal)
    swap = Swap(project_id, "promote", _ref(previous) if previous else None, _ref(version), actor, reason,
                str(principal) if principal is not None else None)
    alerting.emit(session, project_id, "model.promoted", swap_payload(swap))
    return swap


def rollback(session: Session, project_id: int, name: str = "champion", *, actor: str,
             reason: str | None = None, principal: Principal | None = None) -> Swap:
    """Give `champion` back to the version it was promoted from; the rolled-back version is rejected."""
    current = alias_target(session, project_id, "champion", lock=True)
    if current is None:
        raise NotFoundError("this project has no champion to roll back")
    if name != "champion" and name != current.name:
        raise ConflictError(f"{name} is not the champion (the champion is {current.name}); only the champion "
                            "can be rolled back")
    stmt = (select(AuditEntry).where(AuditEntry.project_id == project_id, AuditEntry.version_id == current.id,
                                     AuditEntry.action.in_(("promote", "promote_override")))
            .order_by(AuditEntry.id.desc()))
    promoted = session.scalars(stmt).first()
    previous_id = promoted.details.get("from_version_id") if promoted else None
    previous = session.get(ModelVersion, previous_id) if previous_id else None
    if previous is None:
        raise ConflictError(f"{current.name} was not promoted over another version; there is nothing to roll "
                            "back to")
    _set_status(current, "rejected", f"rolled back: {reason}" if reason else "rolled back")
    _set_status(previous, "champion", f"restored by rollback of {current.name}")
    _set_alias(session, project_id, "champion", previous)
    audit(session, project_id, actor=actor, action="rollback", version_id=previous.id, reason=reason,
          details={"from_version_id": current.id, "from": current.name, "to": previous.name}, principal=principal)
    swap = Swap(project_id, "rollback", _ref(current), _ref(previous), actor, reason,
                str(principal) if principal is not None else None)
    alerting.emit(session, project_id, "model.rolled_back", swap_payload(swap))
    return swap


def swap_payload(swap: Swap) -> dict[str, Any]:
    def one(v: VersionRef | None) -> dict[str, Any] | None:
        return None if v is None else {"name": v.name, "base_model": v.base_model, "adapter_path": v.adapter_path}

    return {"action": swap.action, "champion": one(swap.current), "previous": one(swap.previous),
            "actor": swap.actor, "principal": swap.principal, "reason": swap.reason}


def audit_entries(session: Session, project_id: int, *, version_id: int | None = None,
                  limit: int = 100) -> list[AuditEntry]:
    stmt = (select(AuditEntry).where(AuditEntry.project_id == project_id)
            .order_by(AuditEntry.id.desc()).limit(limit))
    if version_id is not None:
        stmt = stmt.where(AuditEntry.version_id == version_id)
    return list(session.scalars(stmt))


def version_names(session: Session, project_id: int) -> dict[int, str]:
    stmt = select(ModelVersion.id, ModelVersion.name).where(ModelVersion.project_id == project_id)
    return {i: n for i, n in session.execute(stmt).all()}
