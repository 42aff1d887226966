"""Where the dashboards are found: `dashboards/` in a checkout, `monitor/_dashboards` in an installed wheel (a
real wheel, built here with the project's build backend), and clear errors for a broken file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from monitor.dashboards import DashboardError, dashboards_dir, load_dashboards, with_datasource
from tests.support.services import repo_root


def test_checkout_dashboards_are_found() -> None:
    assert dashboards_dir() == repo_root() / "dashboards"
    assert set(load_dashboards()) == {"overview", "drift", "safety", "models", "alerts", "evaluators"}


@pytest.mark.slow
def test_an_installed_wheel_ships_and_finds_them(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-c", "import sys; from hatchling.build import build_wheel; "
                            "print(build_wheel(sys.argv[1]))", str(out)],
                           cwd=repo_root(), capture_output=True, text=True, check=True).stdout.split()[-1]
    site = tmp_path / "site"
    with zipfile.ZipFile(out / built) as wheel:
        wheel.extractall(site)
    assert (site / "monitor/_dashboards/provisioning/datasources/driftloop.yaml").is_file()
    probe = ("import json; from monitor.dashboards import dashboards_dir, load_dashboards; "
             "print(json.dumps([str(dashboards_dir()), sorted(load_dashboards())]))")
    env = {**os.environ, "PYTHONPATH": str(site)}
    answer = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                            check=True).stdout
    where, names = json.loads(answer)
    assert Path(where) == site / "monitor" / "_dashboards"
    assert names == sorted(load_dashboards())


def test_a_broken_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "good.json").write_text(json.dumps({"uid": "a", "title": "A"}))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DashboardError, match=r"bad\.json: not valid JSON"):
        load_dashboards(tmp_path)
    (tmp_path / "bad.json").write_text(json.dumps({"title": "no uid"}))
    with pytest.raises(DashboardError, match=r"bad\.json: not a Grafana dashboard"):
        load_dashboards(tmp_path)
    with pytest.raises(DashboardError, match="no dashboard JSON"):
        load_dashboards(tmp_path / "empty")


def test_datasource_rewrite_touches_only_the_bundled_reference() -> None:
    d = {"panels": [{"datasource": {"type": "grafana-postgresql-datasource", "uid": "driftloop-postgres"},
                     "targets": [{"datasource": {"type": "grafana-postgresql-datasource", "uid": "driftloop-postgres"},
                                  "rawSql": "SELECT 'driftloop-postgres'"}]}],
         "annotations": {"list": [{"datasource": {"type": "grafana", "uid": "-- Grafana --"}}]}}
    out = with_datasource(d, "pg-prod")
    assert out["panels"][0]["datasource"]["uid"] == "pg-prod"
    assert out["panels"][0]["targets"][0]["datasource"]["uid"] == "pg-prod"
    assert out["panels"][0]["targets"][0]["rawSql"] == "SELECT 'driftloop-postgres'"
    assert out["annotations"] == d["annotations"]
    assert d["panels"][0]["datasource"]["uid"] == "driftloop-postgres"  # the original is not changed
