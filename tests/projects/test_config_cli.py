"""`driftloop projects config`: set, unset, apply, dry-run diffs, validation errors naming the field, the audit
log, and which computed windows a change affects."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from monitor.cli import app
from monitor.db import make_engine, reset_engines
from monitor.models import Project
from monitor.pipeline.models import WindowState
from monitor.projects.models import ProjectConfigChange
from monitor.settings import reset_settings_cache

RUN = CliRunner()


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DRIFTLOOP_DATABASE_URL", url)
    reset_settings_cache()
    reset_engines()
    assert RUN.invoke(app, ["migrate"]).exit_code == 0
    assert RUN.invoke(app, ["keys", "create", "shop"]).exit_code == 0
    yield url
    reset_settings_cache()
    reset_engines()


def _cli(*args: str) -> tuple[int, str]:
    out = RUN.invoke(app, list(args), terminal_width=200)
    return out.exit_code, out.output


def _config(url: str) -> dict[str, object]:
    engine = make_engine(url)
    with Session(engine) as s:
        cfg = dict(s.scalars(select(Project.config).where(Project.slug == "shop")).one())
    engine.dispose()
    return cfg


def test_set_unset_and_history(db: str) -> None:
    code, out = _cli("projects", "config", "set", "shop", "window_seconds", "1800")
    assert code == 0 and "window_seconds" in out and "3600" in out and "1800" in out, out
    code, out = _cli("projects", "config", "set", "shop", "reference.n", "500")  # nested: keeps reference.kind
    assert code == 0, out
    assert _config(db) == {"window_seconds": 1800, "reference": {"kind": "first_n", "n": 500, "model_version": None}}
    code, out = _cli("projects", "config", "set", "shop", "drift_methods", "[mmd, classifier]")
    assert code == 0 and _config(db)["drift_methods"] == ["mmd", "classifier"]
    code, out = _cli("projects", "config", "show", "shop")
    assert code == 0 and "1800" in out and "default" in out and "set" in out
    code, out = _cli("projects", "config", "unset", "shop", "window_seconds")
    assert code == 0 and "window_seconds" not in _config(db)
    code, out = _cli("projects", "config", "history", "shop")
    assert code == 0 and out.count("cli") >= 4 and "window_seconds: 1800 →" in out, out
    code, out = _cli("projects", "config", "history", "shop", "--json")
    newest = json.loads(out)[0]
    assert newest["changes"] == [{"key": "window_seconds", "before": 1800, "after": 3600}], newest
    engine = make_engine(db)
    with Session(engine) as s:
        rows = list(s.scalars(select(ProjectConfigChange).order_by(ProjectConfigChange.id)))
        assert [r.diff[0]["key"] for r in rows] == ["window_seconds", "reference.n", "drift_methods", "window_seconds"]
        assert rows[1].before == {"window_seconds": 1800} and rows[1].source == "cli"
    engine.dispose()
    code, out = _cli("projects", "config", "set", "shop", "drift_methods", "[mmd, classifier]")
    assert code == 0 and "no change" in out  # a no-op is not audited
    assert len(_cli("projects", "config", "history", "shop", "--json")[1].split('"id"')) - 1 == 4


@pytest.mark.parametrize(("args", "message"), [
    (["window_seconds", "60"], "window_seconds: Input should be greater than or equal to 300"),
    (["reference.n", "10"], "reference.n: Input should be greater than or equal to 50"),
    (["drift_fields", "[prompt, title]"], "drift_fields.1: Input should be 'prompt' or 'response'"),
    (["windw_seconds", "1800"], "windw_seconds: unknown setting; known settings: window_seconds"),
    (["reference.size", "10"], "reference.size: unknown setting"),
    (["privacy.actions", "{emial: mask}"], "privacy.actions: Value error, unknown PII detector 'emial'"),
    (["privacy.on_error", "ignore"], "privacy.on_error: Input should be 'refuse' or 'withhold'"),
])
def test_validation_errors_name_the_field_and_change_nothing(db: str, args: list[str], message: str) -> None:
    code, out = _cli("projects", "config", "set", "shop", *args)
    assert code == 1 and message in out, out
    assert _config(db) == {}
    assert "no changes yet" in _cli("projects", "config", "history", "shop")[1]


def test_apply_dry_run_shows_the_diff_and_the_windows_it_would_recompute(db: str, tmp_path: Path) -> None:
    engine = make_engine(db)
    start = datetime(2026, 12, 1, tzinfo=UTC)
    with Session(engine) as s:
        pid = s.scalars(select(Project.id).where(Project.slug == "shop")).one()
        for i in range(3):  # three computed windows, one never computed
            s.add(WindowState(project_id=pid, window_start=start + timedelta(hours=i),
                              window_end=start + timedelta(hours=i + 1), computed_at=start + timedelta(hours=i + 1),
                              complete=True))
        s.add(WindowState(project_id=pid, window_start=start + timedelta(hours=3),
                          window_end=start + timedelta(hours=4)))
        s.commit()
    file = tmp_path / "shop.yaml"
    file.write_text("config:\n  drift_methods: [mmd, classifier]\n  bias_attribute: region\n  probes: null\n")
    code, out = _cli("projects", "config", "apply", "shop", str(file), "--dry-run")
    assert code == 0 and "dry run, nothing changed" in out, out
    assert "drift_methods" in out and "classifier" in out and "bias_attribute" in out and "region" in out
    assert "3 computed window(s) (2026-12-01 00:00 to 2026-12-01 02:00 UTC) would be recomputed for bias, drift" \
        in out, out
    assert _config(db) == {}
    code, out = _cli("projects", "config", "apply", "shop", str(file), "--recompute")
    assert code == 0 and "marked for recomputation" in out, out
    assert _config(db) == {"drift_methods": ["mmd", "classifier"], "bias_attribute": "region", "probes": None}
    with Session(engine) as s:
        dirty = s.scalars(select(WindowState.window_start).where(WindowState.project_id == pid,
                                                                 WindowState.dirty_since.is_not(None))).all()
        assert len(dirty) == 3  # the computed ones; the never-computed window was not touched
        change = s.scalars(select(ProjectConfigChange)).one()
        assert change.recomputed_windows == 3
    # A new window length without --recompute keeps the old states; they are not windows of the new length,
    # so a later change does not count or mark them.
    assert _cli("projects", "config", "set", "shop", "window_seconds", "1800")[0] == 0
    code, out = _cli("projects", "config", "set", "shop", "drift_alpha", "0.05", "--dry-run")
    assert "0 computed window(s)" in out, out
    assert _cli("projects", "config", "unset", "shop", "window_seconds")[0] == 0
    code, out = _cli("projects", "config", "set", "shop", "drift_alpha", "0.05", "--dry-run")
    assert "3 computed window(s)" in out, out
    # A new window length re-buckets: the old window states go, and the scan starts over.
    code, out = _cli("projects", "config", "set", "shop", "window_seconds", "7200", "--dry-run")
    assert "window length changes: all 3 computed window(s)" in out and "re-bucketed" in out, out
    code, out = _cli("projects", "config", "set", "shop", "window_seconds", "7200", "--recompute")
    assert code == 0, out
    with Session(engine) as s:
        assert s.scalars(select(WindowState).where(WindowState.project_id == pid)).all() == []
    # A file that is not a mapping, or names an unknown setting, is refused whole.
    file.write_text("- window_seconds\n")
    code, out = _cli("projects", "config", "apply", "shop", str(file))
    assert code == 1 and "must be a mapping" in out
    file.write_text("window_seconds: 1800\nsegment_key: [region]\n")
    code, out = _cli("projects", "config", "apply", "shop", str(file))
    assert code == 1 and "segment_key: unknown setting" in out
    assert _config(db)["window_seconds"] == 7200
    engine.dispose()


def test_list_show_and_metrics(db: str) -> None:
    assert _cli("projects", "config", "set", "shop", "bias_attribute", "region")[0] == 0
    code, out = _cli("projects", "list")
    assert code == 0 and "shop" in out and "bias_attribute" in out
    code, out = _cli("projects", "show", "shop")
    assert code == 0 and "1 live key(s)" in out and "window_seconds" in out
    code, out = _cli("projects", "metrics", "shop", "--all")
    assert code == 0 and "bias.toxicity_rate.gap" in out
    assert "drift.prompt.classifier" in out and "drift_methods is ['mmd'," in out and "add 'classifier'" in out
    code, out = _cli("projects", "show", "nope")
    assert code == 1 and "no project named 'nope'" in out


def test_a_config_edited_by_hand_is_shown_with_its_problems_and_can_be_fixed(db: str) -> None:
    engine = make_engine(db)
    with Session(engine) as s:
        project = s.scalars(select(Project).where(Project.slug == "shop")).one()
        project.config = {"window_seconds": 5, "drift_methods": ["mmd"]}  # what a psql UPDATE could leave
        s.commit()
    engine.dispose()
    code, out = _cli("projects", "show", "shop")
    assert code == 0 and "invalid setting: window_seconds" in out, out
    code, out = _cli("projects", "config", "set", "shop", "window_seconds", "600")
    assert code == 0 and _config(db) == {"window_seconds": 600, "drift_methods": ["mmd"]}, out
