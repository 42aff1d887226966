"""The evaluator score table: one result per (event, evaluator name, evaluator version), computed once and
read back on every recomputation of the window (a new version is a new set of rows)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from monitor.db import UTCDateTime, utcnow
from monitor.models import Base, BigId

EXPLANATION_CHARS = 500


class EvalScore(Base):
    __tablename__ = "eval_scores"
    # The explorer and dashboards: "refusal >= 0.5 in this project" starts from one evaluator's scores.
    __table_args__ = (Index("ix_eval_scores_project_evaluator", "project_id", "evaluator", "version", "value"),)

    event_id: Mapped[int] = mapped_column(BigId, ForeignKey("events.id", ondelete="CASCADE"), primary_key=True)
    evaluator: Mapped[str] = mapped_column(String(48), primary_key=True)
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    label: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    explanation: Mapped[str] = mapped_column(String(EXPLANATION_CHARS), default="")
    error: Mapped[str | None] = mapped_column(String(EXPLANATION_CHARS), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
