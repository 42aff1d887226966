"""A throwaway Postgres primary and a streaming replica of it, from the local binaries, for the read/write split
test. Nothing of the machine's own Postgres is touched: both clusters live in temp dirs on free ports."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass

import psycopg

from tests.support.services import PostgresCluster, Throwaways, _pg_bin, free_port, start_throwaway_postgres


def plain(url: str) -> str:
    return url.replace("postgresql+psycopg", "postgresql")


@dataclass
class PrimaryAndReplica:
    primary: PostgresCluster
    replica: PostgresCluster

    def database_urls(self, name: str) -> tuple[str, str]:
        """(primary, replica) SQLAlchemy URLs of database `name`."""
        return (f"postgresql+psycopg://postgres@127.0.0.1:{self.primary.port}/{name}",
                f"postgresql+psycopg://postgres@127.0.0.1:{self.replica.port}/{name}")

    def primary_lsn(self) -> str:
        with psycopg.connect(plain(self.primary.url), autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
            assert row is not None
            return str(row[0])

    def replayed(self, lsn: str) -> bool:
        """Whether the replica has replayed the primary's WAL up to `lsn` (what it shows is at least that new)."""
        with psycopg.connect(plain(self.replica.url), autocommit=True) as conn:
            row = conn.execute("SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), %s::pg_lsn) >= 0", (lsn,)).fetchone()
            return bool(row and row[0])

    def replica_sql(self, sql: str) -> None:
        with psycopg.connect(plain(self.replica.url), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]  (a fixed statement of the test's own)


def start_primary_and_replica(t: Throwaways) -> PrimaryAndReplica | None:
    """A new primary and a hot-standby streaming replica of it (pg_basebackup -R); None without the binaries.
    `t.stop()` stops and removes both."""
    basebackup = _pg_bin("pg_basebackup")
    primary = start_throwaway_postgres(t)
    if primary is None or basebackup is None:
        return None
    data = tempfile.mkdtemp(prefix="driftloop-replica-")
    t.dirs.append(data)
    if primary.as_user:
        shutil.chown(data, "postgres")
    # -R writes standby.signal and primary_conninfo; -X stream copies the WAL written during the backup.
    subprocess.run([*primary.as_user, basebackup, "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                    "-D", data, "-X", "stream", "-R", "--checkpoint=fast"], check=True, capture_output=True)
    replica = PostgresCluster(data, free_port(), primary.pg_ctl, primary.as_user)
    replica.start()
    # Stopped before the primary (Throwaways stops in order of registration, so put it first).
    t.stops.insert(0, [*primary.as_user, primary.pg_ctl, "-D", data, "-m", "immediate", "stop"])
    return PrimaryAndReplica(primary, replica)
