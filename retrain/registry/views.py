"""Plain-dict views of registry rows, shared by the API and the CLI (`--json`)."""

from __future__ import annotations

from typing import Any

from monitor import principals
from monitor.encoding import iso
from monitor.settings import Settings
from retrain.models import AuditEntry, ModelVersion
from retrain.public_paths import scrub
from retrain.registry.swap import HookOutcome


def version_summary(v: ModelVersion, aliases: dict[str, str], settings: Settings | None = None) -> dict[str, Any]:
    challenger = v.eval_results.get("challenger", {}) if v.eval_results else {}
    return scrub({"name": v.name, "status": v.status, "aliases": sorted(a for a, n in aliases.items() if n == v.name),
            "base_model": v.base_model, "adapter_path": v.adapter_path, "gates_passed": v.gates_passed,
            "eval_nll": challenger.get("eval_nll"), "dataset_hash": v.dataset_hash, "job_id": v.job_id,
            "created_by": v.created_by, "created_at": iso(v.created_at)}, settings)


def version_dict(v: ModelVersion, aliases: dict[str, str], parent: str | None = None,
                 settings: Settings | None = None) -> dict[str, Any]:
    # Server paths (adapter, dataset, anything in a message) are shown relative to their root: retrain.public_paths.
    return scrub({**version_summary(v, aliases, settings), "parent": parent, "status_reason": v.status_reason,
            "dataset_path": v.dataset_path, "dataset_stats": v.dataset_stats, "hyperparams": v.hyperparams,
            "train_losses": v.train_losses, "eval_results": v.eval_results, "gate_results": v.gate_results,
            "trigger": v.trigger, "updated_at": iso(v.updated_at)}, settings)


def audit_dict(e: AuditEntry, version_names: dict[int, str]) -> dict[str, Any]:
    # `actor` is the label the caller chose; `principal` who the server authenticated (None: before 0008).
    return {"id": e.id, "at": iso(e.at), "actor": e.actor, "principal": principals.view(e.principal),
            "action": e.action,
            "version": version_names.get(e.version_id) if e.version_id is not None else None,
            "reason": e.reason, "details": scrub(e.details)}


def hook_dict(outcome: HookOutcome) -> dict[str, Any]:
    return {"called": outcome.called, "ok": outcome.ok, "url": outcome.url, "status_code": outcome.status_code,
            "error": outcome.error}
