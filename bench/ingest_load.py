"""Cheap load and a same-run baseline for bench/ingest.py.

`preencoded_producer`: posts batches encoded once. Each batch is the SDK's own encoding of `batch` events
(`monitor.sdk.items.encode_event`), with a fixed-width placeholder where each event id goes; every post joins the
template's pieces with fresh ids (bytes only, no JSON work), so a producer spends microseconds per batch and the
two cores go to the collector and Postgres.

`copy_baseline`: the same rows written with plain `COPY` into an events-shaped table that has the events'
unique index, one COPY and commit per batch, on the same database in the same run: what the hardware can
store with no HTTP, no validation and no conflict handling at all. The collector's events/s is reported as a
share of it. With `all_indexes` the table also has every index and the foreign key `events` has: the same
rows cost Postgres 3-4x more there (the full-text GIN index most of it; docs/scaling.md, "Hot path").
"""

from __future__ import annotations

import gzip
import multiprocessing as mp
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import psycopg

from monitor.demo.traffic import TOPICS, prompts
from monitor.sdk.items import Limits, encode_event

PLACEHOLDER = "bench-event-id-placeholder"  # a valid id that no text of the bench contains
PII_SUFFIX = " Reach me at jo.bloggs{i}@example.com or +44 20 7946 {i:04d}, card 4111 1111 1111 1111."


def bench_texts(offset: int, pii: bool) -> list[str]:
    texts = [t for topic in TOPICS for t in prompts(topic, 200, offset)]
    if pii:  # one prompt in five carries PII
        texts = [t + PII_SUFFIX.format(i=i) if i % 5 == 0 else t for i, t in enumerate(texts)]
    return texts


def event_values(event_id: str, text: str, ts: float) -> tuple[Any, ...]:
    """The tuple `Client.log` queues for the bench's standard event (order of `items.EVENT_FIELDS`)."""
    return (event_id, ts, None, None, "smollm2-135m", "v1", None, None, text, "Happy to help with that.",
            120.0, 12, 6, None, {"locale": "en"})


def batch_template(texts: list[str], start: int, batch: int) -> list[bytes]:
    """The body `{"events":[...]}` of `batch` events split around the id placeholders: n + 1 pieces."""
    ts = time.time()
    lines = [encode_event(event_values(PLACEHOLDER, texts[(start + j) % len(texts)], ts), Limits())
             for j in range(batch)]
    body = b'{"events":[' + b",".join(lines) + b"]}"
    pieces = body.split(b'"' + PLACEHOLDER.encode() + b'"')
    assert len(pieces) == batch + 1
    return pieces


def fill(pieces: list[bytes], ids: list[bytes]) -> bytes:
    parts: list[bytes] = [b""] * (2 * len(pieces) - 1)
    parts[0::2] = pieces
    parts[1::2] = ids
    return b"".join(parts)


def preencoded_producer(url: str, key: str, n: int, offset: int, batch: int, start_at: float,
                        out: mp.Queue, pii: bool = False, compress: bool = True) -> None:  # type: ignore[type-arg]
    """Posts `n` events in batches of `batch`, one request in flight; puts (posted, accepted, duplicates,
    the answers of retried requests (status and the start of the message), seconds spent building bodies before the
    start) on `out`."""
    texts = bench_texts(offset, pii)
    templates = [batch_template(texts, k * batch, batch) for k in range(4)]  # a few, so texts vary by batch
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if compress:
        headers["Content-Encoding"] = "gzip"
    posted = accepted = duplicates = 0
    retried: list[str] = []
    # Every body is built (ids filled in, gzipped) before the start, as the COPY baseline builds its rows before its
    # clock starts: gzip alone is ~1.1 ms a 2,000-event body, CPU the collector would otherwise lose to the producers.
    t = time.perf_counter()
    bodies: list[tuple[int, bytes]] = []
    for sent in range(0, n, batch):
        size = min(batch, n - sent)
        pieces = templates[(sent // batch) % len(templates)]
        if size < batch:  # the last, shorter batch
            pieces = batch_template(texts, sent, size)
        body = fill(pieces, [b'"%d-%d"' % (offset, sent + j) for j in range(size)])
        bodies.append((size, gzip.compress(body, compresslevel=1) if compress else body))
    building = time.perf_counter() - t
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        while time.time() < start_at:
            time.sleep(0.001)
        for size, body in bodies:
            while True:
                resp = client.post("/v1/events", content=body)
                if resp.status_code in (429, 503):
                    retried.append(f"{resp.status_code} {resp.text[:80]}")
                    time.sleep(float(resp.headers.get("retry-after", "0.05") or 0.05))
                    continue
                if resp.status_code != 200:
                    raise SystemExit(f"collector answered {resp.status_code}: {resp.text[:500]}")
                result = resp.json()
                break
            accepted += result["accepted"]
            duplicates += result["duplicates"]
            posted += size
    out.put((posted, accepted, duplicates, retried, building))


def copy_baseline(db_url: str, project_id: int, n: int, batch: int, *, all_indexes: bool = False) -> float:
    """Rows/s of plain COPY of the bench's events into a fresh events-shaped table, one COPY + commit per batch.
    With `all_indexes` the table carries every index `events` has (metadata GIN, ...; since revision 0015 no
    full-text index and no foreign key to `projects`): what the collector's own write costs the server, like
    with like. Else only the unique (project_id, client_event_id) index."""
    texts = bench_texts(0, False)
    now = datetime.now(UTC)
    meta = orjson.dumps({"locale": "en"}).decode()
    columns = ("project_id, client_event_id, ts, received_at, model, model_version, prompt, response, latency_ms, "
               "prompt_tokens, completion_tokens, metadata")
    rows = [(project_id, f"c-{i}", now, now, "smollm2-135m", "v1", texts[i % len(texts)],
             "Happy to help with that.", 120.0, 12, 6, meta) for i in range(n)]
    with psycopg.connect(db_url.replace("postgresql+psycopg", "postgresql")) as conn:
        conn.execute("DROP TABLE IF EXISTS copy_baseline")
        if all_indexes:
            conn.execute("CREATE TABLE copy_baseline (LIKE events INCLUDING DEFAULTS INCLUDING INDEXES)")
        else:
            conn.execute("CREATE TABLE copy_baseline (LIKE events INCLUDING DEFAULTS)")
            conn.execute("CREATE UNIQUE INDEX ON copy_baseline (project_id, client_event_id)")
        conn.commit()
        start = time.perf_counter()
        for i in range(0, n, batch):
            with conn.cursor() as cur, cur.copy(f"COPY copy_baseline ({columns}) FROM STDIN") as copy:
                for row in rows[i:i + batch]:
                    copy.write_row(row)
            conn.commit()
        took = time.perf_counter() - start
        conn.execute("DROP TABLE copy_baseline")
        conn.commit()
    return n / took
