"""bench/explorer.py drops the secondary indexes for its bulk load and creates them again. On partitioned
storage (the default) pg_indexes gives their definitions as `CREATE INDEX ... ON ONLY <parent>`, which made an
invalid parent index and none on the partitions: every explorer filter was then a scan of every partition
(the negative-feedback page ran for minutes at 1M events). The rebuilt indexes must be valid and on every
partition."""

from __future__ import annotations

import psycopg

from bench.explorer import _plain, rebuild, secondary_indexes


def test_rebuilt_indexes_are_valid_on_every_partition(part_url: str) -> None:
    with psycopg.connect(_plain(part_url)) as conn:  # one transaction, rolled back: the module's db stays as is
        conn.execute("CREATE TABLE feedback_pbench PARTITION OF feedback "
                     "FOR VALUES FROM ('2001-01-01') TO ('2001-01-02')")
        indexes = secondary_indexes(conn)
        assert "ix_feedback_project_event" in dict(indexes)
        for name, _ in indexes:
            conn.execute(f"DROP INDEX {name}")
        rebuild(conn, indexes)
        invalid = conn.execute("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                               "WHERE NOT i.indisvalid").fetchall()
        assert invalid == []
        on_partition = {str(r[0]) for r in conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'feedback_pbench'").fetchall()}
        assert any("(project_id, event_client_id)" in d for d in on_partition), on_partition
        conn.rollback()
