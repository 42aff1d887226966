"""The read API and CLI for metric rows and drift reports."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from monitor.cli import app as cli
from monitor.db import reset_engines
from monitor.pipeline.ops import MetricPoint
from monitor.pipeline.store import upsert_points
from monitor.projects.service import get_project
from monitor.settings import reset_settings_cache
from tests.support.factories import make_key

T0 = datetime(2026, 11, 20, tzinfo=UTC)


def _seed(session: Session, project_id: int) -> None:
    for h in range(3):
        start = T0 + timedelta(hours=h)
        upsert_points(session, project_id, "all", start, start + timedelta(hours=1), [
            MetricPoint("ops.volume", "ok", 100 + h, value=100.0 + h),
            MetricPoint("drift.prompt.mmd", "ok", 100, value=0.01 * h, p_value=0.5 if h < 2 else 0.001,
                        threshold=0.01, flagged=h == 2,
                        details={"explanation": {"clusters": [{"share_reference": 0.01, "share_current": 0.4,
                                                               "examples": ["Plan a trip to Kyoto"]}]}} if h == 2
                        else {}),
        ])
        upsert_points(session, project_id, "model_version=v2", start, start + timedelta(hours=1),
                      [MetricPoint("ops.volume", "ok", 7, value=7.0)])


def test_metrics_and_latest_drift(client: TestClient, session: Session) -> None:
    key = make_key(session)
    other = make_key(session)
    pid = get_project(session, key.project_slug).id
    _seed(session, pid)
    session.commit()
    h = {"Authorization": f"Bearer {key.key}"}
    rows = client.get("/v1/metrics", params={"metric": "ops.volume"}, headers=h).json()
    assert [r["value"] for r in rows] == [100, 101, 102]
    rows = client.get("/v1/metrics", params={"metric": "ops.*", "segment": "model_version=v2",
                                             "start": (T0 + timedelta(hours=1)).isoformat()}, headers=h).json()
    assert [r["value"] for r in rows] == [7, 7]
    report = client.get("/v1/drift/latest", headers=h).json()
    assert report["drift"] is True and report["window_start"].startswith("2026-11-20T02:00")
    assert report["results"][0]["details"]["explanation"]["clusters"][0]["examples"] == ["Plan a trip to Kyoto"]
    # Another project's key sees none of it.
    assert client.get("/v1/metrics", headers={"Authorization": f"Bearer {other.key}"}).json() == []
    assert client.get("/v1/metrics", params={"limit": 0}, headers=h).status_code == 422
    assert client.get("/v1/metrics").status_code == 401
    assert client.get("/v1/metrics/catalog").status_code == 401
    names = {m["name"] for m in client.get("/v1/metrics/catalog", headers=h).json()}
    assert {"ops.latency_p95", "drift.prompt.mmd", "feedback.positive_rate"} <= names


@pytest.fixture
def cli_shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A migrated SQLite database that the CLI reads (DRIFTLOOP_DATABASE_URL), with project `shop` seeded."""
    from monitor import migrations
    from monitor.db import session_scope
    from monitor.projects.service import get_or_create_project

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    migrations.upgrade(url)
    monkeypatch.setenv("DRIFTLOOP_DATABASE_URL", url)
    reset_settings_cache()
    reset_engines()
    try:
        with session_scope() as s:
            pid = get_or_create_project(s, "shop").id
            _seed(s, pid)
        yield pid
    finally:
        reset_settings_cache()
        reset_engines()


def test_cli_metrics_and_drift(cli_shop: int) -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["metrics", "shop", "--metric", "ops.volume", "--since", "2026-11-19", "--json"])
    assert out.exit_code == 0, out.output
    assert '"value": 102.0' in out.output
    out = runner.invoke(cli, ["drift", "shop"])
    assert out.exit_code == 0 and "Plan a trip to Kyoto" in out.output and "yes" in out.output
    assert runner.invoke(cli, ["drift", "nope"]).exit_code == 1


def test_cli_segment_globs_and_any_window(cli_shop: int) -> None:
    """`--segment` matches like alert rules do (fnmatch, case-sensitive); `drift --window TS` shows any window."""
    import json

    from monitor.db import session_scope

    with session_scope() as s:
        upsert_points(s, cli_shop, "model_version=V3", T0, T0 + timedelta(hours=1),
                      [MetricPoint("ops.volume", "ok", 5, value=5.0)])
    runner = CliRunner()

    def segments(pattern: str) -> set[str]:
        out = runner.invoke(cli, ["metrics", "shop", "--metric", "ops.volume", "--since", "2026-11-19",
                                  "--segment", pattern, "--json"])
        assert out.exit_code == 0, out.output
        return {r["segment"] for r in json.loads(out.output)}

    assert segments("model_version=*") == {"model_version=v2", "model_version=V3"}
    assert segments("model_version=v?") == {"model_version=v2"}  # case-sensitive, as rules match
    assert segments("*") == {"all", "model_version=v2", "model_version=V3"}
    assert segments("all") == {"all"}
    assert segments("region=*") == set()
    first = runner.invoke(cli, ["drift", "shop", "--window", "2026-11-20T00:30"])
    assert first.exit_code == 0 and "window 2026-11-20T00:00:00+00:00" in first.output, first.output
    assert "Kyoto" not in first.output  # the first window did not drift
    latest = runner.invoke(cli, ["drift", "shop"])
    assert "window 2026-11-20T02:00:00+00:00" in latest.output
    none = runner.invoke(cli, ["drift", "shop", "--window", "2026-10-01T00:00"])
    assert none.exit_code == 0 and "no drift results for the window containing" in none.output
    bad = runner.invoke(cli, ["drift", "shop", "--window", "yesterday"])
    assert bad.exit_code == 1 and "not an ISO time" in bad.output


def test_run_reports_the_total_before_the_first_window(sqlite_url: str) -> None:
    """`driftloop run`'s progress bar gets the number of windows first (N/M), then one step per window."""
    from monitor.db import make_engine, session_factory
    from monitor.runner import run_pending

    engine = make_engine(sqlite_url)
    seen: list[tuple[str, int]] = []
    report = run_pending(factory=session_factory(engine), project_ids=[-1],
                         on_start=lambda total: seen.append(("start", total)),
                         progress=lambda job: seen.append(("done", 1)))
    engine.dispose()
    assert seen == [("start", 0)] and report.windows == 0
