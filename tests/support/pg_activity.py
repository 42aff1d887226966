"""What another process is doing in Postgres, read from `pg_stat_activity`: proof that a worker was killed
inside a transaction, not after it committed."""

from __future__ import annotations

from typing import Any

import psycopg


def with_application_name(db_url: str, name: str) -> str:
    """The same database URL whose connections carry `name`, so pg_stat_activity shows who is doing what."""
    return f"{db_url}{'&' if '?' in db_url else '?'}application_name={name}"


def open_write_transaction(db_url: str, name: str, table: str) -> dict[str, Any] | None:
    """The transaction of connection `name` when it has written rows (it holds a transaction id) and its
    current or last query names `table`, and it has not committed; None otherwise."""
    plain = db_url.split("?", 1)[0].replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(plain) as conn:
        row = conn.execute(
            "SELECT pid, backend_xid::text, state, left(query, 80), now() - xact_start FROM pg_stat_activity "
            "WHERE application_name = %s AND backend_xid IS NOT NULL AND query ILIKE %s",
            (name, f"%{table}%")).fetchone()
    if row is None:
        return None
    return {"pid": row[0], "xid": row[1], "state": row[2], "query": row[3], "open_for": row[4]}
