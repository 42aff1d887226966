"""What another process is doing in Postgres, read from `pg_stat_activity`: proof that a worker was killed
inside a transaction, not after it committed."""

from __future__ import annotations

from typing import Any

import psycopg


def with_application_name(db_url: str, name: str) -> str:
    """The same database URL whose connections carry `name`, so pg_stat_activity shows who is doing what."""
    return f"{db_url}{'&' if '?' in db_url else '?'}application_name={name}"


def open_write_transaction(db_url: str, name: str, *tables: str) -> dict[str, Any] | None:
    """The transaction of connection `name` when it has written rows (it holds a transaction id), its current or
    last query names one of `tables`, and it has not committed; None otherwise.

    A stage that writes rows and then goes on working in the same transaction (the drift stage stores vectors,
    then reads and stores the reference's calibration) is caught whichever of its tables it is on when polled.
    """
    plain = db_url.split("?", 1)[0].replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(plain) as conn:
        row = conn.execute(
            "SELECT pid, backend_xid::text, state, left(query, 80), now() - xact_start FROM pg_stat_activity "
            "WHERE application_name = %s AND backend_xid IS NOT NULL AND query ILIKE ANY(%s)",
            (name, [f"%{table}%" for table in tables])).fetchone()
    if row is None:
        return None
    return {"pid": row[0], "xid": row[1], "state": row[2], "query": row[3], "open_for": row[4]}
