"""Per-call overhead of `Client.log()` with the worker running against a local collector stand-in.

    python bench/sdk_overhead.py [--calls 200000] [--rate 0]

Times every call with perf_counter_ns and prints p50/p99/p99.9/max in microseconds, the timer's own
floor, and what the worker delivered. `--rate N` paces calls to N per second (0: as fast as possible,
the worst case, where the worker competes with the caller for the GIL the whole time).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.sdk import Client


class _CountingHandler(BaseHTTPRequestHandler):
    """Accepts every batch and counts items; stores nothing (200k events would not fit in a test receiver)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes; no 40 ms delayed-ACK stall
    received = 0
    lock = threading.Lock()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        answer = str(_CountingHandler.received).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
        items = next(iter(json.loads(body).values()))
        with _CountingHandler.lock:
            _CountingHandler.received += len(items)
        answer = json.dumps({"accepted": len(items), "duplicates": 0}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


def _noop(*args: Any, **kwargs: Any) -> str:
    return ""


def _timed_loop(fn: Callable[[], None], calls: int, rate: float) -> tuple[list[int], float]:
    """Run `fn` `calls` times, timing each call; with a rate, idle between calls in sleep (as an app
    waiting on its LLM would, which also leaves the GIL free for the worker)."""
    timer = time.perf_counter_ns
    durations = [0] * calls
    interval_ns = int(1e9 / rate) if rate > 0 else 0
    next_at = timer()
    wall_start = time.perf_counter()
    for i in range(calls):
        if interval_ns:
            next_at += interval_ns
            delay = next_at - timer()
            if delay > 0:
                time.sleep(delay / 1e9)
        start = timer()
        fn()
        durations[i] = timer() - start
    durations.sort()
    return durations, time.perf_counter() - wall_start


def _percentile(sorted_values: list[int], q: float) -> float:
    index = min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))
    return sorted_values[index] / 1000.0


def serve() -> None:
    """The collector stand-in, in its own process (as a real collector would be): prints its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CountingHandler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=0.0, help="calls per second; 0 = unpaced")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return

    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    url = f"http://127.0.0.1:{server.stdout.readline().strip()}"

    prompt = "Summarise the following support ticket for the on-call engineer. " * 8  # ~530 chars
    response = "The customer reports intermittent 502 errors after the last deploy; " * 15  # ~1 KB
    metadata = {"tenant": "acme", "route": "/v1/support/summarise", "user_tier": "pro", "experiment": "b"}
    timer = time.perf_counter_ns

    with tempfile.TemporaryDirectory() as spool:
        client = Client(url, "bench-key", spool_dir=spool)
        # Warm up (thread start, TLS context, first connection) outside the measurement.
        client.log("warm-up")
        client.flush(10)

        floor = []
        for _ in range(20_000):
            start = timer()
            floor.append(timer() - start)

        def call(log: Callable[..., Any]) -> None:
            log(
                prompt,
                response,
                model="smollm2-135m",
                model_version="7",
                latency_ms=412.5,
                prompt_tokens=128,
                completion_tokens=256,
                session_id="sess-42",
                metadata=metadata,
            )

        # Control: the same loop calling a do-nothing function, to show what this machine adds anyway
        # (timer, call overhead, scheduler noise from other processes).
        control, _ = _timed_loop(lambda: call(_noop), args.calls, args.rate)
        durations, wall = _timed_loop(lambda: call(client.log), args.calls, args.rate)
        flush_start = time.perf_counter()
        flushed = client.flush(120)
        flush_seconds = time.perf_counter() - flush_start
        stats = client.stats
        client.close(5)
    received = int(httpx.get(f"{url}/count").text)
    server.terminate()
    server.wait()

    floor.sort()
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, {args.calls} log() calls, "
        f"rate={'unpaced' if not args.rate else f'{args.rate:.0f}/s'}"
    )
    print(
        f"log() overhead (us): p50 {_percentile(durations, 0.50):.2f}  "
        f"p99 {_percentile(durations, 0.99):.2f}  "
        f"p99.9 {_percentile(durations, 0.999):.2f}  max {durations[-1] / 1000:.0f}  "
        f"mean {statistics.fmean(durations) / 1000:.2f}"
    )
    print(
        f"control, no-op call (us): p50 {_percentile(control, 0.50):.2f}  "
        f"p99 {_percentile(control, 0.99):.2f}  "
        f"p99.9 {_percentile(control, 0.999):.2f}  max {control[-1] / 1000:.0f}"
    )
    print(f"timer floor (us): p50 {_percentile(floor, 0.5):.3f}  p99 {_percentile(floor, 0.99):.3f}")
    print(
        f"caller wall time {wall:.2f} s ({args.calls / wall:,.0f} calls/s); then flush {flush_seconds:.2f} s "
        f"-> {flushed}"
    )
    print(
        f"worker: sent {stats.sent - 1}, received by server {received - 1}, "
        f"dropped_queue_full {stats.dropped_queue_full}, dropped_invalid {stats.dropped_invalid}, "
        f"requests {stats.requests}"
    )


if __name__ == "__main__":
    main()
