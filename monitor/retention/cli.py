"""CLI of the retention policy: `driftloop retention run [--dry-run] [--days N] [--project SLUG]`."""

from __future__ import annotations

import typer
from rich.table import Table

from monitor.cli_support import console, project_ids

retention = typer.Typer(no_args_is_help=True, help="Delete events and feedback older than the retention period.")


@retention.command("run")
def run(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only count what would be deleted."),
    days: int | None = typer.Option(None, min=1, help="Override DRIFTLOOP_RETENTION_DAYS for this run."),
    project: str | None = typer.Option(None, "--project", "-p", help="Only this project."),
) -> None:
    """Apply the retention policy now, in short batches (ingestion keeps running meanwhile)."""
    from monitor.db import session_factory
    from monitor.retention.service import apply_retention
    from monitor.settings import get_settings

    settings = get_settings()
    days = days or settings.retention_days
    if not days:
        console.print("retention is off (DRIFTLOOP_RETENTION_DAYS is unset or 0): nothing deleted")
        return
    ids = project_ids(project)
    report = apply_retention(session_factory(), days=days, batch_size=settings.retention_batch_size,
                             project_ids=ids, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    table = Table("project", "events", "embeddings", "scores", "feedback", title=f"{verb} (older than "
                  f"{report.cutoff:%Y-%m-%d %H:%M} UTC, {days} days)")
    for slug, counts in report.projects.items():
        table.add_row(slug, str(counts.events), str(counts.vectors), str(counts.scores), str(counts.feedback))
    totals = report.totals
    table.add_row("total", str(totals.events), str(totals.vectors), str(totals.scores), str(totals.feedback),
                  style="bold")
    console.print(table)
    if not dry_run:
        if report.partitions_dropped:
            rows = ", ".join(f"{n} {t}" for t, n in sorted(report.partition_rows.items()))
            console.print(f"{len(report.partitions_dropped)} expired partition(s) dropped whole ({rows})")
        console.print(f"{report.batches} batch(es) of at most {settings.retention_batch_size} rows")


def register(app: typer.Typer) -> None:
    app.add_typer(retention, name="retention")
