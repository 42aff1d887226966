"""Tables of the LLM judge: tokens spent per project, judge and day (the budget), and sealed API keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from monitor.db import UTCDateTime, utcnow
from monitor.models import Base, BigId


class JudgeSpend(Base):
    """Tokens and calls a judge spent (or reserved) in one budget period. Updated by conditional increments, so
    two workers sharing a budget cannot both spend its last tokens."""

    __tablename__ = "judge_spend"
    __table_args__ = (UniqueConstraint("project_id", "evaluator", "period", name="uq_judge_spend_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    evaluator: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(16))  # UTC day, YYYY-MM-DD
    tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    calls: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class JudgeKey(Base):
    """A project's API key for its judge endpoint, sealed like webhook secrets and never returned."""

    __tablename__ = "judge_keys"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_judge_keys_project_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    secret_enc: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
