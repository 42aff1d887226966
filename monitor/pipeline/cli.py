"""CLI commands of the metrics pipeline: run windows, read metrics and drift, start Celery processes."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from monitor.cli_support import console, err, project_ids


def _since(value: str) -> datetime:
    """`24h`, `7d`, `90m` or an ISO timestamp."""
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if value and value[-1] in units and value[:-1].isdigit():
        return datetime.now(UTC) - timedelta(**{units[value[-1]]: int(value[:-1])})
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _timestamp(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--window {value!r} is not an ISO time (e.g. 2026-12-01T10:00)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.4g}"


def _floor_text(details: dict[str, Any]) -> str:
    """How a drift row was calibrated: λ (90% interval, source), or the fixed / fallback effect floor."""
    inner = details.get("details") or {}
    cal = inner.get("calibration")
    if cal is None:
        return f"floor {_fmt(inner['min_effect'])}" if "min_effect" in inner else ""
    if cal.get("source") == "fallback":
        return f"floor {_fmt(cal.get('floor'))} (fallback: {cal.get('n_reference')} reference rows)"
    interval = cal.get("interval") or [None, None]
    if cal.get("source") == "onset_history":  # an onset row: λ from the project's earlier onset scores
        return (f"λ {_fmt(cal.get('lam'))} ({_fmt(interval[0])}-{_fmt(interval[1])}, onset_history; "
                f"{cal.get('n_blocks')} earlier windows' onset scores; {cal.get('n_reference')} trailing rows)")
    text = (f"λ {_fmt(cal.get('lam'))} ({_fmt(interval[0])}-{_fmt(interval[1])}, {cal.get('source')}; "
            f"{cal.get('n_blocks')} blocks x {cal.get('block_size')} of {cal.get('n_reference')})")
    if cal.get("lam_from"):  # a segment row: its own λ or `all`'s carried to its size, whichever is larger
        text += (f"; from {cal['lam_from']}: own {_fmt(cal.get('lam_segment'))}, all {_fmt(cal.get('lam_all'))} "
                 f"carried {_fmt(cal.get('lam_all_carried'))}")
    return text


CELERY_APP = "monitor.worker.app"


def celery_worker_argv(queues: str, extra: list[str]) -> list[str]:
    """What `driftloop worker` runs (after `python -m`); docker-compose.yml's commands are checked against it."""
    return ["celery", "-A", CELERY_APP, "worker", "-Q", queues, *extra]


def celery_beat_argv(extra: list[str]) -> list[str]:
    return ["celery", "-A", CELERY_APP, "beat", *extra]


def run_windows(project: str | None = typer.Option(None, help="Only this project.")) -> None:
    """Compute every dirty window now, in this process (the embedded mode's beat + workers)."""
    from monitor.runner import run_pending

    ids = project_ids(project)
    with Progress(TextColumn("windows"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task("windows", total=None)
        # The total is known once the scan has found the dirty windows: the bar then shows N/M, not a spinner.
        report = run_pending(project_ids=ids, progress=lambda _job: bar.advance(task),
                             on_start=lambda total: bar.update(task, total=total))
    console.print(f"computed {report.windows} window(s), {report.rows} metric rows")
    for failure in report.failures:
        err.print(f"[red]failed:[/red] {failure}")
    if report.failures:
        raise typer.Exit(1)


def show_metrics(
    project: str = typer.Argument(..., help="Project slug."),
    metric: str = typer.Option("ops.*", help="Metric name or pattern with *."),
    segment: str = typer.Option("all", help="A segment label (model_version=v2), or a glob as in alert rules "
                                "(model_version=*, region=e?)."),
    since: str = typer.Option("24h", help="24h, 7d, 90m or an ISO timestamp."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON rows."),
) -> None:
    """Show metric rows."""
    from monitor.db import session_scope
    from monitor.errors import NotFoundError
    from monitor.metrics.queries import query_metrics, row_dict
    from monitor.projects.service import get_project

    try:
        with session_scope() as s:
            rows = query_metrics(s, get_project(s, project).id, metric=metric, segment=segment,
                                 start=_since(since))
            data = [row_dict(r) for r in rows]
    except (NotFoundError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(data, indent=2))
        return
    table = Table("window", "metric", "segment", "status", "n", "value", "p", "flag")
    for r in data:
        table.add_row(r["window_start"][:16], r["metric"], r["segment"], r["status"], str(r["n"]),
                      _fmt(r["value"]), _fmt(r["p_value"]), "⚠" if r["flagged"] else "")
    console.print(table if data else "no metric rows match")
    # An evaluator that failed in a window says why (its mean/rate rows have status `error`).
    failed = {(r["window_start"][:16], r["metric"].rsplit(".", 1)[0], r["segment"]): r["details"].get("message", "")
              for r in data if (r.get("details") or {}).get("evaluator_status") == "failed"}
    for (window, name, seg), message in sorted(failed.items()):
        err.print(f"[red]{name} failed[/red] in window {window} ({seg}): {message}", highlight=False, soft_wrap=True)


def show_drift(
    project: str = typer.Argument(...), segment: str = typer.Option("all"),
    window: str | None = typer.Option(None, help="Show the window containing this time (ISO, e.g. "
                                      "2026-12-01T10:00, UTC unless it says otherwise) instead of the latest."),
) -> None:
    """The latest drift report (or any window's), with the clusters that grew when drift fired."""
    from monitor.db import session_scope
    from monitor.errors import NotFoundError
    from monitor.metrics.queries import latest_drift, row_dict
    from monitor.projects.service import get_project

    try:
        at = _timestamp(window) if window else None
        with session_scope() as s:
            rows = [row_dict(r) for r in latest_drift(s, get_project(s, project).id, segment, at=at)]
    except (NotFoundError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    if not rows:
        console.print(f"no drift results for the window containing {at.isoformat()} (segment {segment})" if at
                      else "no drift results yet (run `driftloop run`, or wait for the workers)")
        return
    console.print(f"window {rows[0]['window_start']}  segment {segment}")
    table = Table("metric", "statistic", "p-value", "p calibrated", "p adjusted (BH)", "alpha", "effect",
                  "calibration (90% interval, source)", "drift")
    for r in rows:
        d = r["details"] or {}
        table.add_row(r["metric"], _fmt(r["value"]), _fmt(r["p_value"]), _fmt(d.get("p_calibrated")),
                      _fmt(d.get("p_adjusted")), _fmt(r["threshold"]), _fmt(d.get("effect_size")), _floor_text(d),
                      "[red]yes[/red]" if r["flagged"] else "no")
    console.print(table)
    for r in rows:
        explanation = (r["details"] or {}).get("explanation")
        if not explanation:
            continue
        console.print(f"\n[bold]{r['metric']}[/bold]: clusters that grew most")
        for c in explanation.get("clusters", [])[:5]:
            console.print(f"  share {c['share_reference']:.1%} → {c['share_current']:.1%}")
            for ex in c.get("examples", [])[:3]:
                console.print(f"    · {ex}")


bias_app = typer.Typer(no_args_is_help=True, help="Bias measurements.")


@bias_app.command("probe")
def bias_probe(
    project: str = typer.Argument(..., help="Project slug whose metric rows receive the results."),
    generator: str = typer.Option("local", help="local[:<model>] or openai:<base url>|<model name>."),
    axes: str | None = typer.Option(None, help="Comma-separated axes (default: all)."),
    version: str | None = typer.Option(None, help="Model version probed (rows go to that segment)."),
    max_new_tokens: int = typer.Option(32, min=4, max=512),
    bootstrap: int = typer.Option(1000, min=100, max=100_000),
    templates: int = typer.Option(10, min=0, help="The probe set's first N templates per axis (10: the "
                                  "original set, 330 prompts over all axes; 0: all of them)."),
) -> None:
    """Send the counterfactual probe set to a model and store per-group gaps with bootstrap CIs."""
    from monitor.db import session_scope
    from monitor.errors import NotFoundError
    from monitor.projects.service import get_project
    from monitor.safety.probe_job import make_generator, run_probe_job
    from monitor.settings import get_settings

    try:
        gen = make_generator(generator, max_new_tokens=max_new_tokens)
        with Progress(TextColumn("probes"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console) as bar, session_scope() as s:
            task = bar.add_task("probes", total=None)
            report, _ = run_probe_job(
                s, get_project(s, project).id, gen, axes=axes.split(",") if axes else None,
                segment=f"model_version={version}" if version else "all", n_bootstrap=bootstrap,
                report_dir=get_settings().data_dir / "probes", max_templates=templates or None,
                progress=lambda done, total: bar.update(task, completed=done, total=total))
    except (NotFoundError, ValueError, KeyError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    table = Table("axis", "metric", "max group", "min group", "gap", "95% CI")
    for a in report.axes:
        for g in (a.sentiment_gap, a.toxicity_rate_gap):
            table.add_row(a.axis, g.metric, g.max_group, g.min_group, f"{g.gap:.3f}",
                          f"[{g.ci_low:.3f}, {g.ci_high:.3f}]")
    console.print(table)


def worker(ctx: typer.Context, queues: str = typer.Option("default,gpu", help="Queues to consume.")) -> None:
    """Start a Celery worker (extra arguments go to celery)."""
    os.execvp(sys.executable, [sys.executable, "-m", *celery_worker_argv(queues, ctx.args)])


def beat(ctx: typer.Context) -> None:
    """Start Celery beat, which schedules the window scan (extra arguments go to celery)."""
    os.execvp(sys.executable, [sys.executable, "-m", *celery_beat_argv(ctx.args)])


def register(app: typer.Typer) -> None:
    app.command("run")(run_windows)
    app.command("metrics")(show_metrics)
    app.command("drift")(show_drift)
    app.add_typer(bias_app, name="bias")
    app.command("worker", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(worker)
    app.command("beat", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(beat)
