"""A real collector in its own process (uvicorn via `driftloop serve`), stoppable and restartable on the
same port, for tests that cross a real network boundary."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.support.services import free_port


class CollectorProcess:
    def __init__(self, database_url: str, log: Path, port: int | None = None, extra_env: dict[str, str] | None = None,
                 serve_args: tuple[str, ...] = ("--log-level", "warning"), workers: int = 1):
        self.database_url = database_url
        self.port = port or free_port()
        self.log = log
        self.extra_env = extra_env or {}
        self.serve_args = serve_args
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        env = {**os.environ, "DRIFTLOOP_DATABASE_URL": self.database_url, **self.extra_env}
        cmd = [sys.executable, "-m", "monitor.cli", "serve", "--no-migrate", "--port", str(self.port),
               *self.serve_args, "--workers", str(self.workers)]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"collector exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)  # polling interval; the deadline bounds the wait
        raise RuntimeError(f"collector did not answer within {timeout}s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL, as a crash: requests in flight get no answer and nothing shuts down cleanly. With one
        worker the server is this one process (with several, the supervisor's children would be orphaned)."""
        if self.workers != 1:
            raise ValueError("kill() is for a single-process collector; stop() ends a multi-worker one")
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def start_all(collectors: list[CollectorProcess], timeout: float = 120) -> None:
    """Start several collectors at once (each takes seconds to import and bind); raise the first failure."""
    errors: list[BaseException] = []

    def start(c: CollectorProcess) -> None:
        try:
            c.start(timeout=timeout)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(c,)) for c in collectors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
