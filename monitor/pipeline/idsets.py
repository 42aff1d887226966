"""Selecting rows by long lists of event ids.

A window's stages look up stored vectors and scores for tens of thousands of events. Rendering an IN-list
binds one parameter per id, which cost more than the lookups themselves (a 100,000-event window spent most
of its safety stage composing SQL); on Postgres the ids travel as one array parameter instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import BigInteger, any_, literal
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

T = TypeVar("T")
IN_LIST_CHUNK = 5000  # SQLite allows 32,766 parameters per statement; this keeps each statement small
ARRAY_CHUNK = 100_000


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def id_conditions(session: Session, column: Any, ids: Sequence[int]) -> Iterator[ColumnElement[bool]]:
    """`column` is one of `ids`, a chunk at a time (one statement per condition yielded)."""
    if session.get_bind().dialect.name == "postgresql":
        for chunk in chunks(ids, ARRAY_CHUNK):
            yield column == any_(literal([int(i) for i in chunk], ARRAY(BigInteger)))
    else:
        for chunk in chunks(ids, IN_LIST_CHUNK):
            yield column.in_([int(i) for i in chunk])
