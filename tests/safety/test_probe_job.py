"""Probe runs as metric rows: a generator that answers one group more negatively produces a flagged gap
whose confidence interval excludes zero; an even-handed one does not. (The generators here are stand-ins
for a model; the real SmolLM2 run is in tests/safety/test_probes_smollm2.py and the CLI test below.)"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from monitor.pipeline.models import MetricValue
from monitor.projects.service import get_or_create_project
from monitor.safety import load_probe_set
from monitor.safety.probe_job import run_probe_job
from tests.support.factories import unique_slug

AT = datetime(2026, 11, 22, 9, tzinfo=UTC)


def _biased(prompts: list[str]) -> list[str]:
    terms = {p.prompt: p.group for p in load_probe_set().subset(axes=["religion"]).probes()}
    return ["They are awful, hateful and terrible people." if terms.get(p) == terms.get(next(iter(terms)))
            else "They are kind, wonderful and generous people." for p in prompts]


def _fair(prompts: list[str]) -> list[str]:
    return ["They are people with many different lives and stories." for _ in prompts]


@pytest.mark.parametrize(("generate", "flagged"), [(_biased, True), (_fair, False)])
def test_probe_rows(session: Session, tmp_path: Path, generate, flagged: bool) -> None:  # type: ignore[no-untyped-def]
    project = get_or_create_project(session, unique_slug())
    _, rows = run_probe_job(session, project.id, generate, axes=["religion"], n_bootstrap=300,
                            report_dir=tmp_path, at=AT)
    assert rows == 2 and list(tmp_path.glob("probe-*.json"))
    row = session.scalar(select(MetricValue).where(MetricValue.project_id == project.id,
                                                   MetricValue.metric == "bias.probe.religion.sentiment_gap"))
    assert row is not None and row.window_start == AT.replace(hour=0)
    assert row.flagged is flagged
    if flagged:
        assert row.details["ci_low"] > 0.1 and row.value > 0.5
    else:
        assert row.value == pytest.approx(0.0, abs=1e-9)


@pytest.mark.slow
def test_cli_probe_against_local_smollm2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor import migrations
    from monitor.cli import app
    from monitor.db import reset_engines
    from monitor.settings import reset_settings_cache

    url = f"sqlite:///{tmp_path / 'p.db'}"
    migrations.upgrade(url)
    monkeypatch.setenv("DRIFTLOOP_DATABASE_URL", url)
    reset_settings_cache()
    reset_engines()
    try:
        from monitor.db import session_scope

        with session_scope() as s:
            get_or_create_project(s, "shop")
        out = CliRunner().invoke(app, ["bias", "probe", "shop", "--axes", "disability", "--max-new-tokens", "12",
                                       "--bootstrap", "200"])
        assert out.exit_code == 0, out.output
        assert "sentiment" in out.output and "disability" in out.output
        from monitor.settings import get_settings

        assert list((get_settings().data_dir / "probes").glob("probe-*.json"))
    finally:
        reset_settings_cache()
        reset_engines()


def test_probe_schedule_is_due_once_per_interval(session: Session) -> None:
    from datetime import timedelta

    from monitor.pipeline.store import upsert_points
    from monitor.safety import run_probes
    from monitor.safety.probe_job import due_probe_projects, probe_points

    project = get_or_create_project(session, unique_slug())
    plain = get_or_create_project(session, unique_slug())
    project.config = {"probes": {"generator": "local", "axes": ["religion"], "every_hours": 24}}
    session.flush()
    now = datetime.now(UTC)
    due = due_probe_projects(session, now)
    assert project.id in due and plain.id not in due
    report = run_probes(_fair, axes=["religion"], n_bootstrap=100)
    upsert_points(session, project.id, "all", AT, AT + timedelta(days=1), probe_points(report))
    session.flush()
    assert project.id not in due_probe_projects(session, now)
    assert project.id in due_probe_projects(session, now + timedelta(hours=25))


class _Counting:
    """A stand-in model that records every prompt it was sent."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def __call__(self, prompts: list[str]) -> list[str]:
        self.prompts.extend(prompts)
        return _fair(prompts)


def test_probe_job_defaults_to_the_original_ten_templates(session: Session) -> None:
    # The shipped set has 40 templates (for the retraining gate); the monitoring job keeps the old cost:
    # 10 templates x 33 terms over the 7 axes = 330 prompts, and those are the set's first 10 templates.
    full = load_probe_set()
    assert len(full.templates) == 40
    first10 = {t.text.split("{person}")[0] for t in full.templates[:10]}
    project = get_or_create_project(session, unique_slug())
    gen = _Counting()
    report, _ = run_probe_job(session, project.id, gen, n_bootstrap=100, at=AT)
    assert len(gen.prompts) == 330 == len(full.probes()) // 4
    assert {p.prompt for p in full.subset(templates=[t.id for t in full.templates[:10]]).probes()} == set(gen.prompts)
    assert all(any(start in prompt for start in first10) for prompt in gen.prompts)
    assert len(report.axes) == 7


@pytest.mark.parametrize(("limit", "expected"), [(3, 3 * 33), (25, 25 * 33), (None, 40 * 33), (500, 40 * 33)])
def test_probe_job_template_limit_is_honoured(session: Session, limit: int | None, expected: int) -> None:
    project = get_or_create_project(session, unique_slug())
    gen = _Counting()
    run_probe_job(session, project.id, gen, n_bootstrap=100, at=AT, max_templates=limit)
    assert len(gen.prompts) == expected


def test_scheduled_probe_uses_the_schedules_template_limit(session: Session, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.pipeline.config import ProbeSchedule
    from monitor.safety import probe_job

    assert ProbeSchedule().max_templates == 10
    sent: dict[str, _Counting] = {}

    def fake_generator(spec: str, **_: object) -> _Counting:  # no model download: a counting stand-in
        return sent.setdefault(spec, _Counting())

    monkeypatch.setattr(probe_job, "make_generator", fake_generator)
    default = get_or_create_project(session, unique_slug())
    default.config = {"probes": {"generator": "local:a", "axes": ["gender"]}}
    wider = get_or_create_project(session, unique_slug())
    wider.config = {"probes": {"generator": "local:b", "axes": ["gender"], "max_templates": 20}}
    everything = get_or_create_project(session, unique_slug())
    everything.config = {"probes": {"generator": "local:c", "axes": ["gender"], "max_templates": None}}
    session.flush()
    for p in (default, wider, everything):
        probe_job.run_scheduled_probe(session, p.id, tmp_path)
    assert [len(sent[k].prompts) for k in ("local:a", "local:b", "local:c")] == [10 * 3, 20 * 3, 40 * 3]
