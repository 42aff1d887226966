"""Tables of projects besides the core ones: the audit log of project configuration changes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from monitor.db import UTCDateTime, utcnow
from monitor.models import Base, BigId, JsonDoc


class ProjectConfigChange(Base):
    """One change of `projects.config`: who, through what, the stored config before and after, and the
    per-key diff of the effective settings (defaults filled in), so history reads without replaying."""

    __tablename__ = "project_config_changes"
    __table_args__ = (Index("ix_project_config_changes_project_at", "project_id", "changed_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(128))  # "cli", "api key dl_1a2b3c4d", "ui operator alice"
    source: Mapped[str] = mapped_column(String(16))  # cli | api | ui
    before: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    after: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    diff: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc)
    recomputed_windows: Mapped[int] = mapped_column(default=0)  # windows marked dirty by this change
