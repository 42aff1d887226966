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
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from monitor.db import UTCDateTime, utcnow

# SQLite only auto-increments an INTEGER PRIMARY KEY; Postgres gets a real bigint identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")
JsonDoc = JSON().with_variant(JSONB(), "postgresql")


# The text vector of an event's prompt and response: what the search indexer stores in `event_search.tsv`, and
# what the explorer computes for the newest events, not indexed yet (monitor/events/search.py).
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
        # The explorer: a session's events. Partial: every query asks `session_id = :value`, and events without a
        # session then skip this insert (revision 0016).
        Index("ix_events_project_session", "project_id", "session_id",
              postgresql_where=text("session_id IS NOT NULL"), sqlite_where=text("session_id IS NOT NULL")),
        # The explorer's metadata filters; Postgres only. Full text is not indexed here: a GIN over
        # to_tsvector was half of Postgres's time per ingested row, so `event_search` holds it, filled off the
        # ingest path (monitor/events/indexing.py). Written as text so that SQLite's comparison with the
        # migrations skips it.
        Index("ix_events_metadata", text("metadata jsonb_path_ops"), postgresql_using="gin").ddl_if(
            dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # No foreign key to projects: checking it was a sixth of Postgres's time per ingested row (docs/scaling.md,
    # third round); the collector resolves the project from its API key, and deleting a project deletes its
    # events explicitly (monitor/projects/service.py `delete_project`).
    project_id: Mapped[int] = mapped_column(Integer)
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


class EventSearch(Base):
    """An event's text vector (prompt and response), written by the search indexer a few seconds after the event
    (monitor/events/indexing.py), never by the collector. Postgres only; SQLite searches events with LIKE."""

    __tablename__ = "event_search"
    __table_args__ = (
        # GIN on Postgres; SQLite has the table (never written there) and a plain index, to keep one schema
        Index("ix_event_search_tsv", "tsv", postgresql_using="gin"),
    )

    event_id: Mapped[int] = mapped_column(BigId, ForeignKey("events.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[int] = mapped_column(Integer)
    tsv: Mapped[str] = mapped_column(TSVECTOR().with_variant(Text(), "sqlite"))
    # The event's timestamp: the partition key when storage is partitioned (monitor/partitions/), so an expired
    # day's search rows go with its events. Always written; nullable as the other children's.
    event_ts: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class EventSearchState(Base):
    """The search indexer's progress (one row). Every event with `id <= indexed_through` has its `event_search`
    row; the explorer scans the ones above directly. `safe_through` is the highest id below which no transaction
    can still commit an event; `pending_id` the id sequence's value read at `pending_at`, which becomes safe once
    every transaction open at that moment has ended (monitor/events/indexing.py)."""

    __tablename__ = "event_search_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    indexed_through: Mapped[int] = mapped_column(BigInteger, default=0)
    safe_through: Mapped[int] = mapped_column(BigInteger, default=0)
    pending_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    pending_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


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
