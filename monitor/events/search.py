"""Full-text search on prompt and response: Postgres's text search over a GIN index, SQLite's LIKE.

Postgres: `websearch_to_tsquery` (words, "quoted phrases", -exclusions, `or`), English stemming, so
"refund" also finds "refunds"; the expression is the one the index `ix_events_fts` is built on, written with
constants (a bound parameter in it would stop the planner from matching the index in a generic plan).
SQLite: a case-insensitive substring match on either text, with LIKE's wildcards escaped (no index: the
embedded mode is for small data).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnClause, ColumnElement, func, literal_column, or_
from sqlalchemy.orm import Session

from monitor.models import Event

TS_CONFIG = "english"
DOCUMENT: ColumnClause[Any] = literal_column(
    f"to_tsvector('{TS_CONFIG}', coalesce(events.prompt, '') || ' ' || coalesce(events.response, ''))")


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def text_condition(session: Session, q: str) -> ColumnElement[bool]:
    if session.get_bind().dialect.name == "postgresql":
        return DOCUMENT.op("@@")(func.websearch_to_tsquery(literal_column(f"'{TS_CONFIG}'"), q))
    pattern = f"%{escape_like(q)}%"
    return or_(Event.prompt.like(pattern, escape="\\"), Event.response.like(pattern, escape="\\"))
