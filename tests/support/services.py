"""Find the Postgres and Redis the tests use, or start throwaway ones from local binaries.

Order: the URL in the environment (DRIFTLOOP_TEST_DATABASE_URL / DRIFTLOOP_TEST_REDIS_URL); else the local
default; else a throwaway server in a temp dir if `initdb`/`pg_ctl` or `redis-server` are installed; else a
message saying how to get one.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
HOW_TO = (
    "Start them with `docker compose up -d postgres redis` (with the secrets docker-compose.yml requires "
    "exported, see the README; then export "
    "DRIFTLOOP_TEST_DATABASE_URL=postgresql+psycopg://driftloop:$POSTGRES_PASSWORD@127.0.0.1:5432/postgres and "
    "DRIFTLOOP_TEST_REDIS_URL=redis://127.0.0.1:6379/0), or install PostgreSQL and Redis locally."
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_answers(url: str) -> bool:
    try:
        with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=3).ping())
    except redis.RedisError:
        return False


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@dataclass
class Throwaways:
    stops: list[list[str]] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)

    def stop(self) -> None:
        for cmd in self.stops:
            subprocess.run(cmd, capture_output=True, check=False)
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)


@dataclass
class PostgresCluster:
    """A throwaway cluster from the local binaries, in a temp dir; stoppable and restartable on its port."""

    data: str
    port: int
    pg_ctl: str
    as_user: list[str]  # run as the postgres system user when we are root (the server refuses root)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        subprocess.run(
            [*self.as_user, self.pg_ctl, "-D", self.data, "-o",
             f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1", "-w", "start", "-l", f"{self.data}/log"],
            check=True, capture_output=True,
        )

    def stop(self, mode: str = "fast") -> None:
        """`fast` disconnects clients and shuts down cleanly; `immediate` is a crash (recovery on next start)."""
        subprocess.run([*self.as_user, self.pg_ctl, "-D", self.data, "-m", mode, "-w", "stop"], check=True,
                       capture_output=True)


def start_throwaway_postgres(t: Throwaways) -> PostgresCluster | None:
    """A new cluster, started (trust auth, user postgres); `t.stop()` removes it. None without the binaries."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        return None
    data = tempfile.mkdtemp(prefix="driftloop-pg-")
    t.dirs.append(data)
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: run the server as the postgres system user
        if not shutil.which("runuser"):
            return None
        shutil.chown(data, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_user, initdb, "-D", data, "-U", "postgres", "--auth=trust"], check=True, capture_output=True)
    cluster = PostgresCluster(data, free_port(), pg_ctl, as_user)
    cluster.start()
    t.stops.append([*as_user, pg_ctl, "-D", data, "-m", "immediate", "stop"])
    return cluster


def _start_postgres(t: Throwaways) -> str | None:
    cluster = start_throwaway_postgres(t)
    return cluster.url if cluster else None


def _start_redis(t: Throwaways) -> str | None:
    server = shutil.which("redis-server")
    if not server:
        return None
    port = free_port()
    d = tempfile.mkdtemp(prefix="driftloop-redis-")
    t.dirs.append(d)
    subprocess.run(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "yes",
         "--dir", d, "--pidfile", f"{d}/pid"],
        check=True, capture_output=True,
    )
    t.stops.append(["redis-cli", "-p", str(port), "shutdown", "nosave"])
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(50):
        if _redis_answers(url):
            return url
        subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, check=False)
    return url


def resolve(t: Throwaways) -> tuple[str, str]:
    """(postgres admin URL, redis URL), starting throwaways if needed; raises RuntimeError if impossible."""
    pg = os.environ.get("DRIFTLOOP_TEST_DATABASE_URL", DEFAULT_PG)
    if not _pg_answers(pg):
        started = _start_postgres(t)
        if not started or not _pg_answers(started):
            raise RuntimeError(f"no Postgres answers at {pg} and none could be started here. {HOW_TO}")
        pg = started
    rd = os.environ.get("DRIFTLOOP_TEST_REDIS_URL", DEFAULT_REDIS)
    if not _redis_answers(rd):
        started = _start_redis(t)
        if not started or not _redis_answers(started):
            raise RuntimeError(f"no Redis answers at {rd} and none could be started here. {HOW_TO}")
        rd = started
    return pg, rd


def recreate_database(admin_url: str, name: str) -> str:
    """Drop and create `name` on the server of `admin_url`; returns the SQLAlchemy URL of the new database."""
    plain = admin_url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0]
    return f"{base}/{name}"


def drop_database(admin_url: str, name: str) -> None:
    plain = admin_url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def checkout_tag() -> str:
    """A short tag of this checkout's path: two checkouts testing at once never share a database."""
    import hashlib

    return hashlib.sha1(str(repo_root()).encode()).hexdigest()[:6]


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]
