"""Model registry: retraining jobs, model versions, aliases (champion/challenger) and the audit log.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
# Chained after the alerting tables (0004) since branch `alerts` is merged here; nothing in this revision
# depends on them (retrain_jobs.action_request_id deliberately has no foreign key).
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JsonDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Ts = sa.DateTime(timezone=True)


def _project() -> sa.Column:
    return sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "retrain_jobs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        _project(),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("losses", JsonDoc, nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("trigger", JsonDoc, nullable=False),
        sa.Column("params", JsonDoc, nullable=False),
        sa.Column("action_request_id", BigId, nullable=True, unique=True),
        sa.Column("version_id", BigId, nullable=True),
        sa.Column("results", JsonDoc, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("started_at", Ts, nullable=True),
        sa.Column("finished_at", Ts, nullable=True),
        sa.Column("updated_at", Ts, nullable=False),
    )
    op.create_index("ix_retrain_jobs_project_created", "retrain_jobs", ["project_id", "created_at"])
    op.create_table(
        "model_versions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        _project(),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("base_model", sa.String(512), nullable=False),
        sa.Column("adapter_path", sa.String(2048), nullable=True),
        sa.Column("parent_version_id", BigId, sa.ForeignKey("model_versions.id", ondelete="SET NULL"),
                  nullable=True),
        sa.Column("job_id", BigId, sa.ForeignKey("retrain_jobs.id", ondelete="SET NULL"), nullable=True,
                  unique=True),
        sa.Column("dataset_path", sa.String(2048), nullable=True),
        sa.Column("dataset_hash", sa.String(64), nullable=True),
        sa.Column("dataset_stats", JsonDoc, nullable=False),
        sa.Column("hyperparams", JsonDoc, nullable=False),
        sa.Column("train_losses", JsonDoc, nullable=False),
        sa.Column("eval_results", JsonDoc, nullable=False),
        sa.Column("gate_results", JsonDoc, nullable=False),
        sa.Column("gates_passed", sa.Boolean(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("trigger", JsonDoc, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
        sa.UniqueConstraint("project_id", "name", name="uq_model_versions_project_name"),
    )
    op.create_table(
        "model_aliases",
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("alias", sa.String(32), primary_key=True),
        sa.Column("version_id", BigId, sa.ForeignKey("model_versions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        _project(),
        sa.Column("at", Ts, nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("version_id", BigId, sa.ForeignKey("model_versions.id", ondelete="SET NULL"), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("details", JsonDoc, nullable=False),
    )
    op.create_index("ix_audit_log_project_at", "audit_log", ["project_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_project_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("model_aliases")
    op.drop_table("model_versions")
    op.drop_index("ix_retrain_jobs_project_created", table_name="retrain_jobs")
    op.drop_table("retrain_jobs")
