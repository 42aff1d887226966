"""Events explorer indexes, drift cluster membership, alert triage (acknowledgements and silences).

On Postgres the explorer also gets two GIN indexes the ORM does not declare (expression / operator-class
indexes): full-text search over prompt and response, and `metadata @> {...}` filters. SQLite searches with
LIKE and has neither.

Revision ID: 0010_explorer_triage
Revises: 0009
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_explorer_triage"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Ts = sa.DateTime(timezone=True)
# Kept in step with monitor/events/search.py (the query must use the very same expression to use the index).
FTS_EXPRESSION = ("to_tsvector('english'::regconfig, (COALESCE(prompt, ''::text) || ' '::text) "
                  "|| COALESCE(response, ''::text))")


def _project() -> sa.Column:
    return sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False)


def upgrade() -> None:
    op.create_index("ix_events_project_session", "events", ["project_id", "session_id"])
    op.create_index("ix_feedback_project_score", "feedback", ["project_id", "score"])
    op.create_index("ix_event_scores_scorer_score", "event_scores", ["scorer", "field", "score"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE INDEX ix_events_fts ON events USING gin ({FTS_EXPRESSION})")
        op.execute("CREATE INDEX ix_events_metadata ON events USING gin (metadata jsonb_path_ops)")

    op.create_table(
        "drift_cluster_events",
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("window_start", Ts, primary_key=True),
        sa.Column("metric", sa.String(96), primary_key=True),
        sa.Column("cluster", sa.Integer(), primary_key=True),
        sa.Column("event_id", BigId, sa.ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
    )
    op.create_index("ix_drift_cluster_events_event", "drift_cluster_events", ["event_id"])

    op.create_table(
        "alert_acks",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        _project(),
        sa.Column("alert_id", BigId, sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", Ts, nullable=False),
    )
    op.create_index("ix_alert_acks_alert", "alert_acks", ["alert_id"])
    op.create_table(
        "alert_silences",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        _project(),
        sa.Column("rule_id", sa.Integer(), sa.ForeignKey("alert_rules.id", ondelete="CASCADE"), nullable=True),
        sa.Column("segment", sa.String(320), nullable=False),
        sa.Column("until", Ts, nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("lifted_at", Ts, nullable=True),
        sa.Column("lifted_by", sa.String(128), nullable=True),
    )
    op.create_index("ix_alert_silences_project_until", "alert_silences", ["project_id", "until"])


def downgrade() -> None:
    op.drop_table("alert_silences")
    op.drop_table("alert_acks")
    op.drop_table("drift_cluster_events")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_events_metadata")
        op.execute("DROP INDEX IF EXISTS ix_events_fts")
    op.drop_index("ix_event_scores_scorer_score", table_name="event_scores")
    op.drop_index("ix_feedback_project_score", table_name="feedback")
    op.drop_index("ix_events_project_session", table_name="events")
