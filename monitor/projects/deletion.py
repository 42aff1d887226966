"""Deleting a project with everything it holds.

Most tables reach a project by a foreign key with ON DELETE CASCADE, but `events` has none (checking it was a
sixth of Postgres's time per ingested row: docs/scaling.md, third round), and on partitioned storage nothing
refers to events by a foreign key either (monitor/partitions/schema.py). So the events and what derives from
each of them are deleted here explicitly, then the project row, whose cascades take the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from monitor.evaluators.models import EvalScore
from monitor.events.indexing import lock_search_index
from monitor.models import Event, EventSearch, Project
from monitor.partitions.schema import BY_NAME
from monitor.partitions.service import partitioned_tables
from monitor.pipeline.models import DriftClusterEvent, EventScore, EventVector


@dataclass
class DeletedProject:
    events: int = 0


def delete_project(session: Session, project_id: int) -> DeletedProject:
    """Delete one project and all its rows, in the caller's transaction (which commits). One transaction: a
    large project's deletion holds its rows' locks until the commit, as the cascade did."""
    lock_search_index(session)  # no indexer batch may write the vectors of the events deleted here
    ids = select(Event.id).where(Event.project_id == project_id).scalar_subquery()
    opts = {"synchronize_session": False}
    for model in (EventSearch, EventVector, EventScore, EvalScore, DriftClusterEvent):
        session.execute(delete(model).where(model.event_id.in_(ids)), execution_options=opts)
    gone = session.execute(delete(Event).where(Event.project_id == project_id), execution_options=opts)
    present = partitioned_tables(session.connection())
    for table in ("events", "feedback"):
        keys = BY_NAME[table].keys_table
        if table in present and keys:
            session.execute(text(f"DELETE FROM {keys} WHERE project_id = :p"), {"p": project_id})
    session.execute(delete(Project).where(Project.id == project_id), execution_options=opts)
    return DeletedProject(events=int(gone.rowcount))  # type: ignore[attr-defined]
