"""Debian's nginx in front of collector processes, for tests and fault scripts: the shipped template
(deploy/nginx/driftloop.conf.template) filled in, started in a temp dir on a free port, stopped by its pid.

`make install` installs nginx with apt-get when it is missing (as root on Debian, as CI runs)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from monitor.api.body_cap import SMALL_BODY_BYTES
from monitor.settings import Settings
from tests.support.services import free_port, repo_root

TEMPLATE = repo_root() / "deploy" / "nginx" / "driftloop.conf.template"
INSTALL_HINT = "nginx is not installed: `make install` installs it as root on Debian (apt-get install -y nginx)"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def upstream_line(address: str, max_fails: int = 2, fail_timeout: str = "5s") -> str:
    return f"server {address} max_fails={max_fails} fail_timeout={fail_timeout};"


def render(listen: str, upstreams: list[str], run_dir: Path, settings: Settings | None = None) -> str:
    """The template with its placeholders filled; limits from `settings` (the collectors' own)."""
    settings = settings or Settings()
    values = {
        "LISTEN": listen,
        "UPSTREAM_SERVERS": "\n        ".join(upstream_line(u) for u in upstreams),
        "RUN_DIR": str(run_dir),
        "MAX_BODY_BYTES": str(settings.max_body_bytes),
        "SMALL_BODY_BYTES": str(SMALL_BODY_BYTES),
        "MAX_HEADER_BYTES": str(settings.max_header_bytes),
    }
    text = TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", value)
    left = re.findall(r"\{\{[A-Z_]+\}\}", text)
    if left:
        raise ValueError(f"unfilled placeholders in {TEMPLATE.name}: {sorted(set(left))}")
    return text


@dataclass(frozen=True)
class Logged:
    """One access-log line: the request, nginx's status, and every collector tried (in order)."""

    request: str
    status: int
    upstreams: tuple[str, ...]
    upstream_statuses: tuple[str, ...]


_LINE = re.compile(r'"(?P<request>[^"]*)" (?P<status>\d+) \d+ upstream="(?P<up>[^"]*)" '
                   r'upstream_status="(?P<ups>[^"]*)"')


@dataclass
class Nginx:
    """nginx in the foreground (`daemon off`), so it is our child and stops with its pid."""

    upstreams: list[str]
    settings: Settings | None = None
    port: int = field(default_factory=free_port)
    run_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="driftloop-nginx-")))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def conf(self) -> Path:
        return self.run_dir / "nginx.conf"

    def start(self, timeout: float = 30) -> None:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError(INSTALL_HINT)
        # Worker processes run as `nobody` when nginx starts as root: they must reach and write the temp dirs.
        self.run_dir.chmod(0o755)
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.run_dir / sub).mkdir(exist_ok=True)
            (self.run_dir / sub).chmod(0o777)
        self.conf.write_text(render(f"127.0.0.1:{self.port}", self.upstreams, self.run_dir, self.settings))
        check = subprocess.run([binary, "-t", "-p", str(self.run_dir), "-e", str(self.run_dir / "error.log"),
                                "-c", str(self.conf)], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t refused the rendered template:\n{check.stderr}")
        self.proc = subprocess.Popen([binary, "-p", str(self.run_dir), "-e", str(self.run_dir / "error.log"),
                                      "-c", str(self.conf), "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=(self.run_dir / "stderr.log").open("ab"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.error_log()[-2000:]}")
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return  # nginx answers (whatever the collectors say)
            except httpx.HTTPError:
                time.sleep(0.05)  # polling interval; the deadline bounds the wait
        raise RuntimeError(f"nginx did not answer within {timeout}s: {self.error_log()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: finish requests in flight, then exit
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def error_log(self) -> str:
        path = self.run_dir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def access_log(self) -> list[Logged]:
        path = self.run_dir / "access.log"
        if not path.exists():
            return []
        out = []
        for line in path.read_text(errors="replace").splitlines():
            m = _LINE.search(line)
            if m:
                # Several tries are separated by ", " (": " after an internal redirect); an address has no space.
                ups = tuple(u for u in re.split(r", |: ", m["up"]) if u and u != "-")
                out.append(Logged(m["request"], int(m["status"]), ups,
                                  tuple(s for s in re.split(r", |: ", m["ups"]) if s and s != "-")))
        return out
