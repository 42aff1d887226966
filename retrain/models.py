"""Tables of the closed loop: model versions, their aliases, the audit log, and retraining jobs.

A project's model starts as its base model, registered as version `v0` with no adapter and the `champion`
alias. Each retraining job adds at most one version (unique on `job_id`) and points `challenger` at it.
Every change of status or alias writes an `audit_log` row in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from monitor.db import UTCDateTime, utcnow
from monitor.models import Base, BigId, JsonDoc

VERSION_STATUSES = ("candidate", "approved", "rejected", "champion", "archived")
JOB_STATUSES = ("queued", "running", "succeeded", "failed")
ALIASES = ("champion", "challenger")


class RetrainJob(Base):
    """One run of the pipeline: dataset → train → evaluate → register. Progress rows are committed as it goes."""

    __tablename__ = "retrain_jobs"
    __table_args__ = (Index("ix_retrain_jobs_project_created", "project_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str] = mapped_column(String(16))  # queued | dataset | train | evaluate | register | done
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1 over all stages
    losses: Mapped[list[float]] = mapped_column(JsonDoc, default=list)  # training loss per step, so far
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    trigger: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    params: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)  # overrides of training/gate settings
    # One firing asks once; the alert action request's id makes job creation idempotent. No foreign key: the
    # registry does not depend on the alerting tables.
    action_request_id: Mapped[int | None] = mapped_column(BigId, unique=True, nullable=True)
    version_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    results: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)  # dataset facts, evaluation so far
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_model_versions_project_name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(32))  # v0, v1, ...
    base_model: Mapped[str] = mapped_column(String(512))
    adapter_path: Mapped[str | None] = mapped_column(String(2048), nullable=True)  # None: the base model itself
    parent_version_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("model_versions.id", ondelete="SET NULL"), nullable=True
    )
    job_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("retrain_jobs.id", ondelete="SET NULL"), unique=True, nullable=True
    )
    dataset_path: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    dataset_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    dataset_stats: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    hyperparams: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    train_losses: Mapped[list[float]] = mapped_column(JsonDoc, default=list)
    eval_results: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    gate_results: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc, default=list)
    gates_passed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)  # None: not evaluated (v0)
    status: Mapped[str] = mapped_column(String(16))
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    trigger: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ModelAlias(Base):
    """`champion` / `challenger` → a version. Moving one is an update of one row, inside the change's transaction."""

    __tablename__ = "model_aliases"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(32), primary_key=True)
    version_id: Mapped[int] = mapped_column(BigId, ForeignKey("model_versions.id", ondelete="CASCADE"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AuditEntry(Base):
    """Who did what to which version, when and why. Written in the same transaction as the change."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_project_at", "project_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(256))  # the label the caller chose (free text)
    # Who the server authenticated behind the action (monitor/principals.py); NULL on rows older than 0008.
    principal: Mapped[str | None] = mapped_column(String(256), nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    version_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("model_versions.id", ondelete="SET NULL"), nullable=True
    )
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
