"""`driftloop demo`: progress bars while it runs, then a summary table, the gate results, what the model
server answered before and after, and the UI link (or how to approve the challenger)."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from monitor.cli_support import console, err
from monitor.demo.report import DemoReport

BAR_NAMES = {"traffic": "traffic through the SDK", "metrics": "metrics windows", "retrain": "retraining (%)"}


def _num(x: Any) -> str:
    return "—" if x is None else f"{x:.4g}" if isinstance(x, float) else str(x)


def show(report: DemoReport) -> None:
    table = Table("stage", "outcome", "detail", "seconds", title=f"driftloop demo ({report.mode})")
    for s in report.stages:
        table.add_row(s.name, "[green]ok[/green]" if s.ok else "[red]FAILED[/red]", s.detail, f"{s.seconds:.1f}")
    table.add_row("total", "", "", f"{sum(s.seconds for s in report.stages):.1f}")
    console.print(table)
    if report.explanation_examples:
        console.print("[bold]What drifted[/bold] (example prompts from the clusters that grew):")
        for ex in report.explanation_examples[:6]:
            console.print(f"  · {ex}")
    values = report.values
    if values.get("gates"):
        gates = Table("gate", "champion", "challenger", "limit", "result", "why",
                      title=f"evaluation gates of {values.get('challenger')}")
        for g in values["gates"]:
            status = g.get("status") or ("skipped" if g["skipped"] else "passed" if g["passed"] else "failed")
            verdict = {"skipped": "[dim]skipped[/dim]", "passed": "[green]passed[/green]",
                       "inconclusive": "[yellow]inconclusive[/yellow]"}.get(status, "[red]FAILED[/red]")
            gates.add_row(g["name"], _num(g["champion"]), _num(g["challenger"]), _num(g["limit"]), verdict, g["reason"])
        console.print(gates)
    for key, when in (("served_before", "before"), ("served_after", "after")):
        if key in values:
            served = values[key]
            console.print(f"[bold]model server {when}[/bold] ({served['model']}): {served['question']!r} → "
                          f"{served['answer']!r}")
    if values.get("override"):
        console.print(f"[yellow]--auto-approve overrode failed gates[/yellow]: {values['override_reason']}")
    if values.get("ui_link"):
        console.print(f"challenger in the UI: {values['ui_link']}")
        sign_in = values.get("ui_sign_in")
        console.print(f"  sign in as {sign_in['username']!r} with password {sign_in['password']!r}" if sign_in else
                      "  sign in with your operator account (driftloop ui create-operator NAME)")
    if values.get("approve_command"):
        console.print(f"approve it: {values['approve_command']}\nthen promote it: {values['promote_command']}")
    if values.get("loop"):
        console.print(values["loop"])
    console.print(f"database: {report.database_url}  project: {report.project}")


def _quiet_model_libraries() -> None:
    # The model libraries' own progress bars and deprecation notices would tear through the demo's bars.
    import os
    import warnings

    os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF conversion's bar on the first run
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def demo(
    workdir: Path = typer.Option(Path("driftloop-demo"), "--dir", help="Where the demo keeps its files."),
    events_per_window: int = typer.Option(150, min=50, max=5000, help="Calls per simulated hour."),
    auto_approve: bool = typer.Option(False, "--auto-approve", help="Approve and promote the challenger (an "
                                      "audited override if a gate failed); show the server answering as it."),
    production: bool = typer.Option(False, "--production", help="Run on PostgreSQL + Redis + a Celery worker "
                                    "(DRIFTLOOP_DATABASE_URL, DRIFTLOOP_REDIS_URL) instead of SQLite."),
    keep_running: bool = typer.Option(False, "--keep-running", help="At the end, keep the collector (and its "
                                      "UI) and the model server up until Ctrl-C."),
) -> None:
    """Run the end-to-end demo: traffic, drift, alert, retraining, evaluation (and promotion)."""
    from monitor.demo.run import DemoConfigError, run_demo

    _quiet_model_libraries()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        tasks: dict[str, Any] = {}
        shown: list[bool] = []

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(BAR_NAMES.get(stage, stage), total=total)
            bar.update(tasks[stage], completed=done, total=total)

        def hold(report: DemoReport) -> None:
            bar.stop()
            show(report)
            console.print(f"[bold]collector {report.collector_url} and model server "
                          f"{report.values.get('model_server_url', '(not started)')} are up; Ctrl-C stops them")
            shown.append(True)
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()

        try:
            report = run_demo(workdir, events_per_window=events_per_window, progress=progress,
                              auto_approve=auto_approve, production=production,
                              hold=hold if keep_running else None)
        except DemoConfigError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
    if not shown:
        show(report)
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
