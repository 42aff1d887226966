"""Erasure across monitor and registry: the events (monitor/privacy/erasure.py), then the lines of every stored
training-set snapshot that came from them, the list of model versions trained on them, and one audit entry.

A version's adapter was trained on the erased examples and cannot un-learn them: it is listed (and marked in its
`dataset_stats["erased_examples"]`) so an operator can decide to retire it; its `dataset_hash` keeps naming what
it was trained on, so the rewritten snapshot no longer matches it — on purpose, the UI shows the mismatch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.db import run_unit
from monitor.privacy.erasure import ErasureReport, Selector, erase_events, scrub_texts
from retrain.models import ModelVersion, RetrainJob
from retrain.registry.service import audit


@dataclass
class FullErasure:
    events: ErasureReport
    versions: list[str] = field(default_factory=list)  # trained on erased examples
    snapshot_lines: int = 0
    audit_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {**self.events.as_dict(), "snapshot_lines": self.snapshot_lines, "model_versions": self.versions,
                "audit_id": self.audit_id}


def _snapshot_hits(path: Path, ids: set[str], texts: set[str]) -> tuple[list[str], int]:
    """Lines kept, lines removed; the removed lines' texts are added to `texts` (evaluations quote them)."""
    kept: list[str] = []
    removed = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec.get("event_id") in ids:
            removed += 1
            texts.update(v for k, v in rec.items() if k in ("prompt", "response") and isinstance(v, str) and v)
        else:
            kept.append(line)
    return kept, removed


def scrub_snapshots(session: Session, project_id: int, ids: set[str], *, dry_run: bool,
                    texts: set[str] | None = None) -> tuple[list[str], int]:
    """(names of versions whose training set held any of the events, snapshot lines removed or to remove).
    Unless `dry_run`, evaluation samples quoting the erased texts (`eval_results`, jobs' `results`) are scrubbed."""
    texts = set() if texts is None else texts
    names: list[str] = []
    total = 0
    if not ids:
        return names, total
    versions = session.scalars(select(ModelVersion).where(ModelVersion.project_id == project_id,
                                                          ModelVersion.dataset_path.is_not(None))
                               .order_by(ModelVersion.id)).all()
    seen: dict[str, int] = {}  # snapshot file -> lines removed (two versions may share one file)
    for v in versions:
        path = Path(str(v.dataset_path))
        if str(path) not in seen:
            if not path.is_file():
                continue
            kept, removed = _snapshot_hits(path, ids, texts)
            seen[str(path)] = removed
            total += removed
            if removed and not dry_run:
                tmp = path.with_suffix(path.suffix + ".tmp")
                tmp.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
                tmp.replace(path)
        removed = seen[str(path)]
        if removed:
            names.append(v.name)
            if not dry_run:
                stats = dict(v.dataset_stats or {})
                stats["erased_examples"] = int(stats.get("erased_examples", 0)) + removed
                v.dataset_stats = stats
    if not dry_run and texts:
        for version in session.scalars(select(ModelVersion).where(ModelVersion.project_id == project_id)):
            scrubbed, n = scrub_texts(version.eval_results, texts)
            if n:
                version.eval_results = scrubbed
        for job in session.scalars(select(RetrainJob).where(RetrainJob.project_id == project_id)):
            scrubbed, n = scrub_texts(job.results, texts)
            if n:
                job.results = scrubbed
    return names, total


def erase(
    factory: sessionmaker[Session], project_id: int, sel: Selector, *, actor: str, reason: str | None = None,
    batch_size: int = 5000, dry_run: bool = False,
) -> FullErasure:
    """Erase the selected events everywhere (or, with `dry_run`, say what would go), with one audit entry."""
    events = erase_events(factory, project_id, sel, batch_size=batch_size, dry_run=dry_run)
    out = FullErasure(events=events)

    def registry(session: Session) -> None:
        out.versions, out.snapshot_lines = scrub_snapshots(session, project_id, events.client_event_ids,
                                                           dry_run=dry_run, texts=set(events.texts))
        if not dry_run:
            # The audit entry names the selector and counts, never the erased content.
            entry = audit(session, project_id, actor=actor, action="erase", reason=reason,
                          details={"selector": sel.describe(), **out.as_dict()})
            out.audit_id = entry.id

    run_unit(factory, registry)
    return out
