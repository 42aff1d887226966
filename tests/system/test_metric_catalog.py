"""The metric catalog is an explicit table: a fresh collector lists every family of metrics, whatever else its
process happened to import (a registry filled by imports listed only the drift and ops names there)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FRESH_COLLECTOR = """
import json, sys
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from monitor.api.app import create_app
from monitor.db import make_engine
from monitor.projects.service import create_key
from monitor.settings import Settings
with Session(make_engine(sys.argv[1])) as session:
    key = create_key(session, "catalog-reader", scopes="read").key  # the catalog is a read like the others
    session.commit()
app = create_app(Settings(database_url=sys.argv[1], data_dir=sys.argv[2]))
with TestClient(app) as client:
    print(json.dumps(client.get("/v1/metrics/catalog", headers={"Authorization": f"Bearer {key}"}).json()))
"""


def test_a_fresh_collector_lists_safety_bias_and_probe_metrics(sqlite_url: str, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", FRESH_COLLECTOR, sqlite_url, str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, check=True)
    kinds: dict[str, set[str]] = {}
    for metric in json.loads(out.stdout.strip().splitlines()[-1]):
        kinds.setdefault(metric["kind"], set()).add(metric["name"])
    assert {"ops", "feedback", "drift", "safety", "bias"} <= set(kinds)
    assert {"safety.toxicity_rate.response", "safety.sentiment_mean.response"} <= kinds["safety"]
    assert "bias.toxicity_rate.gap" in kinds["bias"]
    assert any(name.startswith("bias.probe.") and name.endswith("_gap") for name in kinds["bias"])
    assert {"drift.prompt.mmd", "drift.latency_ms.ks"} <= kinds["drift"]
