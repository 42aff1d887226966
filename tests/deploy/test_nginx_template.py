"""deploy/nginx/driftloop.conf.template against the code: it renders with the collectors' own limits, nginx
accepts it (`nginx -t`), and only the collectors' ingest routes are retried as non-idempotent requests."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from monitor.api.body_cap import INGEST_PATHS, SMALL_BODY_BYTES
from monitor.settings import Settings
from tests.support.nginx import INSTALL_HINT, nginx_binary, render


def _locations(conf: str) -> dict[str, str]:
    """{location argument: its block} in a rendered file (its location blocks hold no nested braces)."""
    return {m["arg"].strip(): m["body"] for m in re.finditer(r"location\s+(?P<arg>[^{]+)\{(?P<body>[^}]*)\}", conf)}


def test_the_ingest_location_is_exactly_the_collectors_ingest_routes_and_alone_retries_posts(tmp_path: Path) -> None:
    locations = _locations(render("127.0.0.1:18080", ["127.0.0.1:18001"], tmp_path))
    ingest = [arg for arg, body in locations.items() if "non_idempotent" in body]
    assert len(ingest) == 1, locations.keys()
    pattern = re.compile(ingest[0].removeprefix("~").strip())
    paths = {f"/v1/{name}" for name in ("events", "feedback", "traces", "alert-rules", "webhook-endpoints",
                                        "models/v2/approve", "retrain", "erasure", "events/1")}
    matched = {p for p in paths if pattern.search(p)}
    assert matched == set(INGEST_PATHS)  # a new ingest route must be added to the template (and vice versa)
    assert "non_idempotent" not in locations["/"]


def test_rendered_limits_are_the_collectors_and_nginx_accepts_the_file(tmp_path: Path) -> None:
    settings = Settings(max_body_bytes=8 * 1024 * 1024, max_header_bytes=16 * 1024)
    conf = render("127.0.0.1:18080", ["127.0.0.1:18001", "127.0.0.1:18002"], tmp_path, settings)
    locations = _locations(conf)
    ingest = next(body for body in locations.values() if "non_idempotent" in body)
    assert f"client_max_body_size {settings.max_body_bytes};" in ingest
    assert f"client_max_body_size {SMALL_BODY_BYTES};" in conf
    assert f"large_client_header_buffers 4 {settings.max_header_bytes};" in conf
    upstreams = re.findall(r"server (127.0.0.1:1800\d) max_fails=2 fail_timeout=5s;", conf)
    assert upstreams == ["127.0.0.1:18001", "127.0.0.1:18002"]
    binary = nginx_binary()
    if binary is None:
        pytest.skip(INSTALL_HINT)
    run_dir = Path(tempfile.mkdtemp(prefix="driftloop-nginx-t-"))
    try:
        (run_dir / "nginx.conf").write_text(render("127.0.0.1:18080", ["127.0.0.1:18001"], run_dir, settings))
        check = subprocess.run([binary, "-t", "-p", str(run_dir), "-e", str(run_dir / "error.log"),
                                "-c", str(run_dir / "nginx.conf")], capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stderr
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
