"""The collector's whole route for `POST /v1/events`, in one process, for instruction counts that load cannot move.

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.MODE \\
        python bench/ingest_request_instructions.py MODE [REQUESTS=100] [BATCH=10]

Builds the real app (`create_app`, every middleware and dependency) on a fresh Postgres database and calls it as
an ASGI server would, without HTTP: MODE `setup` sends one warm-up request, `requests` sends REQUESTS more, each
a gzip batch of BATCH pre-encoded bench events (bench/ingest_load.py). The collector's instructions per request =
(Collected of `requests` - Collected of `setup`) / REQUESTS; at the default BATCH of 10 that is the fixed cost
of a request (HTTP parsing by uvicorn aside), which bench/ingest.py's 2,000-event batches pay once per batch.
Postgres's own work is in its backend, not in this process. docs/scaling.md ("Eighth round") has the figures.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest_load import batch_template, bench_texts, fill
from monitor import migrations
from monitor.api.app import create_app
from monitor.db import make_engine
from monitor.projects.service import create_key
from monitor.settings import Settings
from tests.support.services import drop_database, recreate_database

ADMIN = os.environ.get("DRIFTLOOP_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


async def post(app: Any, body: bytes, key: str) -> int:
    """One `POST /v1/events` through the ASGI interface, the way uvicorn calls the app."""
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": "POST", "scheme": "http", "path": "/v1/events", "raw_path": b"/v1/events", "root_path": "",
        "query_string": b"", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000),
        "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
                    (b"content-encoding", b"gzip"), (b"content-length", str(len(body)).encode()),
                    (b"authorization", f"Bearer {key}".encode())],
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # the client stays connected until the response is sent
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def main() -> None:
    mode = sys.argv[1]
    requests = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    if mode not in ("setup", "requests"):
        raise SystemExit(f"unknown mode {mode!r}: setup or requests")
    pieces = batch_template(bench_texts(0, False), 0, batch)
    bodies = [gzip.compress(fill(pieces, [b'"r-%d-%d"' % (k, j) for j in range(batch)]), compresslevel=1)
              for k in range(requests + 1)]
    name = f"driftloop_bench_request_{os.getpid()}"
    url = recreate_database(ADMIN, name)
    try:
        migrations.upgrade(url)
        engine = make_engine(url)
        with Session(engine) as s:
            key = create_key(s, "bench", scopes="ingest").key
            s.commit()
        # Limits out of the way (bench/ingest.py does the same): the route, not the limiter's refusals, is measured.
        settings = Settings(database_url=url, rate_limit_backend="memory", rate_limit_per_second=1e9,
                            rate_limit_burst=10**9, rate_limit_events_per_second=1e12,
                            rate_limit_events_burst=10**12)
        app = create_app(settings, engine)

        async def run() -> None:
            statuses = [await post(app, bodies[0], key)]
            if mode == "requests":
                statuses += [await post(app, body, key) for body in bodies[1:]]
            if set(statuses) != {200}:
                raise SystemExit(f"unexpected statuses {sorted(set(statuses))}")

        asyncio.run(run())
        engine.dispose()
    finally:
        drop_database(ADMIN, name)


if __name__ == "__main__":
    main()
