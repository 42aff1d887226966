"""`driftloop alerts rules apply` accepts a rule on a metric the project does not compute, and says so."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.db import reset_engines
from monitor.settings import reset_settings_cache

RUN = CliRunner()
RULES = """project: shop
rules:
  - {name: clf, metric: drift.prompt.classifier, field: flagged, comparator: "==", threshold: 1}
  - {name: slow, metric: ops.latency_p95, comparator: ">", threshold: 2500, segment: "region=*"}
  - {name: fine, metric: drift.prompt.mmd, field: flagged, comparator: "==", threshold: 1}
"""


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("DRIFTLOOP_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    reset_settings_cache()
    reset_engines()
    assert RUN.invoke(app, ["migrate"]).exit_code == 0
    assert RUN.invoke(app, ["keys", "create", "shop"]).exit_code == 0
    yield tmp_path
    reset_settings_cache()
    reset_engines()


def test_apply_warns_about_rules_that_cannot_fire(db: Path) -> None:
    rules = db / "rules.yaml"
    rules.write_text(RULES)
    out = RUN.invoke(app, ["alerts", "rules", "apply", str(rules)])
    assert out.exit_code == 0 and "created: clf, slow, fine" in out.output, out.output
    warnings = [line for line in out.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, out.output
    assert "'clf'" in warnings[0] and "drift_methods" in warnings[0]
    assert "'slow'" in warnings[1] and "segment key 'region'" in warnings[1]
    # With the settings that compute them, the same file applies without a warning.
    assert RUN.invoke(app, ["projects", "config", "set", "shop", "drift_methods", "[mmd, classifier]"]).exit_code == 0
    assert RUN.invoke(app, ["projects", "config", "set", "shop", "segment_keys", "[region]"]).exit_code == 0
    again = RUN.invoke(app, ["alerts", "rules", "apply", str(rules)])
    assert again.exit_code == 0 and "warning:" not in again.output, again.output
