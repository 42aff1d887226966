"""Full-text search on prompt and response: Postgres's text search over `event_search`, SQLite's LIKE.

Postgres: `websearch_to_tsquery` (words, "quoted phrases", -exclusions, `or`), English stemming, so
"refund" also finds "refunds". The text vectors are written off the ingest path (monitor/events/indexing.py)
into `event_search` (GIN on `tsv`); events above the indexer's watermark have none yet, so their vector is
computed here with the same expression (a scan of those few ids along the primary key). A search therefore
finds an event as soon as it is committed. The configuration is written as a constant (a bound parameter in
it would stop the planner from matching the index in a generic plan).
SQLite: a case-insensitive substring match on either text, with LIKE's wildcards escaped (no index: the
embedded mode is for small data).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, literal_column, or_, select, tuple_
from sqlalchemy.orm import Session, aliased

from monitor.events.indexing import indexed_through
from monitor.models import Event, EventSearch

TS_CONFIG = "english"
# The events not indexed yet are read under this alias (the outer query's `events` must not be correlated in).
_TAIL = aliased(Event, name="search_tail")


def _document(table: str) -> Any:
    """The text vector of a row of `table` (the name the query reads `events` under)."""
    return literal_column(
        f"to_tsvector('{TS_CONFIG}', coalesce({table}.prompt, '') || ' ' || coalesce({table}.response, ''))")


DOCUMENT: Any = _document("events")
TAIL_DOCUMENT: Any = _document("search_tail")


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def ts_query(q: str) -> Any:
    return func.websearch_to_tsquery(literal_column(f"'{TS_CONFIG}'"), q)


def text_condition(session: Session, project_id: int, q: str, *, walk: bool = False) -> ColumnElement[bool]:
    """Postgres: the events matching `q`. `walk`: written for a query that walks events newest first and stops
    at a page (a dense search): each event's own `event_search` row is probed by its key, and only events past
    the watermark have their vector computed. Else (a sparse search) as the set of matches: those the GIN
    index finds, and those past the watermark, both read before the page is sorted."""
    if session.get_bind().dialect.name == "postgresql":
        query = ts_query(q)
        through = indexed_through(session)
        if walk:
            # The timestamp written as a range, not `=`: with only equalities the planner may turn the probe into
            # a hashed subplan that reads every match first (25,000 rows for a common word at 1M events: 270 ms of
            # a 290 ms page). The id stays `=`, so the probe is estimated at one row by the primary key (the id as
            # a range too made it AND a GIN scan of every match into each probe: 27 s for a phrase).
            own_row = select(EventSearch.event_id).where(
                EventSearch.event_id == Event.id, EventSearch.event_ts.between(Event.ts, Event.ts),
                EventSearch.tsv.op("@@")(query))
            return or_(exists(own_row), and_(Event.id > through, DOCUMENT.op("@@")(query)))
        indexed = select(EventSearch.event_id, EventSearch.event_ts).where(
            EventSearch.project_id == project_id, EventSearch.tsv.op("@@")(query))
        tail = select(_TAIL.id, _TAIL.ts).where(
            _TAIL.project_id == project_id, _TAIL.id > through, TAIL_DOCUMENT.op("@@")(query))
        return tuple_(Event.id, Event.ts).in_(indexed.union_all(tail))
    pattern = f"%{escape_like(q)}%"
    return or_(Event.prompt.like(pattern, escape="\\"), Event.response.like(pattern, escape="\\"))
