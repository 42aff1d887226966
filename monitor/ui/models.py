"""Tables of the approval UI: operator accounts, their sign-in sessions, and sign-in attempts (for throttling).

Passwords and session tokens are stored hashed only; the session cookie carries the token, signed with the
deployment's secret key. Project API keys live elsewhere (`api_keys`) and never open the UI.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from monitor.db import UTCDateTime, utcnow
from monitor.models import Base, BigId


class Operator(Base):
    """A person who may sign in to the UI and decide on model versions (the audit log's actor)."""

    __tablename__ = "ui_operators"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))  # scrypt$n$r$p$salt$hash
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class OperatorSession(Base):
    """One sign-in. Deleted at logout; refused after `expires_at`. The CSRF token of every form is tied to it."""

    __tablename__ = "ui_sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 of the cookie's token
    operator_id: Mapped[int] = mapped_column(ForeignKey("ui_operators.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LoginAttempt(Base):
    """A sign-in attempt by username as typed (existing or not), so throttling reveals nothing about accounts."""

    __tablename__ = "ui_login_attempts"
    __table_args__ = (Index("ix_ui_login_attempts_username_at", "username", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64))
    remote: Mapped[str | None] = mapped_column(String(64), nullable=True)
    succeeded: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
