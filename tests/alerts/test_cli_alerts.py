"""The alerting CLI against a real (SQLite file) database and a loopback receiver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from monitor.cli import app
from monitor.db import make_engine, reset_engines
from monitor.projects.service import get_project
from monitor.settings import reset_settings_cache
from tests.support.metric_windows import drift_point, finish, write_window
from tests.support.webhook_receiver import Receiver

RULES = """
project: shop
rules:
  - name: prompt-drift
    metric: drift.prompt.mmd
    field: p_value
    comparator: "<"
    threshold: 0.01
    actions:
      - {type: webhook, endpoints: [oncall]}
      - {type: retrain}
  - {name: slow, metric: ops.latency_p95, comparator: ">", threshold: 2500, for_windows: 3}
"""


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DRIFTLOOP_DATABASE_URL", url)
    monkeypatch.setenv("DRIFTLOOP_WEBHOOK_ALLOW_PRIVATE", "true")
    reset_settings_cache()
    reset_engines()
    yield url
    reset_settings_cache()
    reset_engines()


def ok(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_alerts_and_webhooks_commands(cli_db: str, tmp_path: Path, receiver: Receiver) -> None:
    ok("migrate")
    ok("keys", "create", "shop")
    added = ok("webhooks", "add", "oncall", receiver.url, "-p", "shop", "--event", "alert.*")
    secret = added.strip().splitlines()[-1]
    assert secret.startswith("whsec_")
    listed = ok("webhooks", "list", "-p", "shop")
    assert "oncall" in listed and secret not in listed
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    assert "would be created: prompt-drift, slow" in ok("alerts", "rules", "apply", str(rules), "--dry-run")
    assert "created: prompt-drift, slow" in ok("alerts", "rules", "apply", str(rules))
    assert "unchanged: prompt-drift, slow" in ok("alerts", "rules", "apply", str(rules))
    listed_rules = json.loads(ok("alerts", "rules", "list", "-p", "shop", "--json"))
    assert [(r["name"], r["field"], r["threshold"]) for r in listed_rules] == [("prompt-drift", "p_value", 0.01),
                                                                               ("slow", "value", 2500)]
    bad = tmp_path / "bad.yaml"
    bad.write_text(RULES.replace("for_windows: 3", "for_windows: -3"))
    refused = CliRunner().invoke(app, ["alerts", "rules", "apply", str(bad)])
    assert refused.exit_code == 1 and "rules[1].for_windows" in refused.output

    engine = make_engine(cli_db)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    with Session(engine) as s:
        pid = get_project(s, "shop").id
    receiver.answer(500)
    write_window(factory, pid, 0, [drift_point(0.001)])
    finish(factory, pid, 0)
    engine.dispose()

    alerts = json.loads(ok("alerts", "list", "-p", "shop", "--json"))
    assert [(a["rule"], a["status"]) for a in alerts] == [("prompt-drift", "firing")]
    assert "no action requests" not in ok("alerts", "actions", "-p", "shop", "--status", "pending")
    assert "no action requests" in ok("alerts", "actions", "-p", "shop", "--status", "done")
    [delivery] = json.loads(ok("webhooks", "deliveries", "-p", "shop", "--json"))
    assert delivery["attempt_log"][0]["status_code"] == 500
    assert "succeeded" in ok("webhooks", "redeliver", str(delivery["id"]), "-p", "shop")
    assert [p["type"] for p in receiver.verified(secret)] == ["alert.firing", "alert.firing"]
    new_secret = ok("webhooks", "rotate", "oncall", "-p", "shop", "--grace", "0").strip().splitlines()[-1]
    assert new_secret.startswith("whsec_") and new_secret != secret
    assert "disabled" in ok("webhooks", "disable", "oncall", "-p", "shop")
    assert "deleted rule slow" in ok("alerts", "rules", "delete", "slow", "-p", "shop")
    missing = CliRunner().invoke(app, ["alerts", "rules", "delete", "slow", "-p", "shop"])
    assert missing.exit_code == 1 and "no alert rule named 'slow'" in missing.output
