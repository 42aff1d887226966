"""ORM tables of the core: projects, API keys, events and feedback.

Later capabilities (metrics, alerts, the model registry) add their own modules of tables on the same `Base`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from monitor.db import UTCDateTime, utcnow

# SQLite only auto-increments an INTEGER PRIMARY KEY; Postgres gets a real bigint identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")
JsonDoc = JSON().with_variant(JSONB(), "postgresql")


# Written as Postgres prints it back (so the ORM/migration comparison sees one index); the explorer's query
# builds the same expression (monitor/events/search.py).
FTS_EXPRESSION = ("to_tsvector('english'::regconfig, (COALESCE(prompt, ''::text) || ' '::text) "
                  "|| COALESCE(response, ''::text))")


class Base(DeclarativeBase):
    pass


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    config: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)


class ApiKey(Base):
    """A project API key. Only its SHA-256 is stored; the key itself is shown once, at creation."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(32))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Space-separated scope names (`ingest read admin`, monitor/projects/service.py). No default here or in the
    # database: whoever writes a key says what it may do.
    scopes: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Event(Base):
    """One LLM call."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("project_id", "client_event_id", name="uq_events_project_client_id"),
        Index("ix_events_project_ts", "project_id", "ts"),
        Index("ix_events_project_received", "project_id", "received_at"),
        Index("ix_events_project_session", "project_id", "session_id"),  # the explorer: a session's events
        # The explorer's full-text search and metadata filters; Postgres only (SQLite searches with LIKE). The
        # expression must match monitor/events/search.py's, or the planner cannot use the index.
        Index("ix_events_fts", text(FTS_EXPRESSION), postgresql_using="gin").ddl_if(dialect="postgresql"),
        # (written as text so that SQLite's comparison with the migrations skips it, as it skips the one above)
        Index("ix_events_metadata", text("metadata jsonb_path_ops"), postgresql_using="gin").ddl_if(
            dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    client_event_id: Mapped[str] = mapped_column(String(128))
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    trace_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    session_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    model: Mapped[str | None] = mapped_column(String(256), nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(256), nullable=True)
    prompt_template_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    prompt_template_version: Mapped[str | None] = mapped_column(String(256), nullable=True)
    prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    response: Mapped[str | None] = mapped_column(Text, nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JsonDoc, nullable=True)


class Feedback(Base):
    """User feedback, linked to its event by the event's client id so it may arrive first."""

    __tablename__ = "feedback"
    __table_args__ = (
        UniqueConstraint("project_id", "client_feedback_id", name="uq_feedback_project_client_id"),
        Index("ix_feedback_project_event", "project_id", "event_client_id"),
        Index("ix_feedback_project_ts", "project_id", "ts"),
        Index("ix_feedback_project_score", "project_id", "score"),  # the explorer's negative-feedback filter
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    client_feedback_id: Mapped[str] = mapped_column(String(128))
    event_client_id: Mapped[str] = mapped_column(String(128))
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    label: Mapped[str | None] = mapped_column(String(256), nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    corrected_response: Mapped[str | None] = mapped_column(Text, nullable=True)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JsonDoc, nullable=True)
