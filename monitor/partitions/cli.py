"""CLI of partitioned storage: `driftloop partitions convert [--dry-run] [--to plain] [--yes]`.

A new Postgres database is partitioned by its first migration. One that already held events when it was migrated
stays plain (converting it locks ingestion for minutes per million events), and this command converts it when
the operator chooses: `--dry-run` says what it would convert, how long that should take and what it locks.
"""

from __future__ import annotations

from typing import Literal

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from monitor.cli_support import console
from monitor.cli_support import fail as _fail

partitions = typer.Typer(no_args_is_help=True, help="Time-partitioned storage on Postgres.")

LOCK_TIMEOUT_MS = 10_000  # waiting longer for the tables' lock would stall every writer queued behind it


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


@partitions.command("convert")
def convert(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would be converted, how long it "
                                 "should take and what it locks; change nothing."),
    to: str = typer.Option("partitioned", "--to", help="`partitioned` (ranges of DRIFTLOOP_PARTITION_INTERVAL, "
                           "or `day` when that is `off`) or `plain` (back to plain tables)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Convert events, feedback, embeddings and scores to time partitions (or back), in one transaction."""
    from sqlalchemy.exc import SQLAlchemyError

    from monitor.db import get_engine
    from monitor.partitions.convert import (
        TYPICAL_MILLION,
        Copied,
        estimate_seconds,
        repeated_client_ids,
        row_counts,
        to_partitioned,
        to_plain,
    )
    from monitor.partitions.schema import TABLES
    from monitor.partitions.service import forget_partitioned_tables, partitioned_tables
    from monitor.settings import get_settings

    if to not in ("partitioned", "plain"):
        _fail(f"--to is `partitioned` or `plain`, not {to!r}")
    target: Literal["partitioned", "plain"] = "plain" if to == "plain" else "partitioned"
    settings = get_settings()
    interval = "day" if settings.partition_interval == "off" else settings.partition_interval
    engine = get_engine()
    if engine.dialect.name != "postgresql":
        _fail("partitioned storage is for Postgres; SQLite keeps plain tables")
    with engine.connect() as conn:
        partitioned = "events" in partitioned_tables(conn)
        rows = row_counts(conn)
        size = int(conn.exec_driver_sql(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "WHERE c.relname = ANY(%(t)s) OR c.oid IN (SELECT inhrelid FROM pg_inherits "
            "WHERE inhparent::regclass::text = ANY(%(t)s))", {"t": [t.name for t in TABLES]}).scalar_one())
    if partitioned == (target == "partitioned"):
        console.print(f"the tables are already {target}: nothing to do")
        return
    if target == "plain":
        with engine.connect() as conn:
            repeated = repeated_client_ids(conn)
        if repeated:
            console.print(f"{repeated:,} client ids are stored more than once (resent with another timestamp in "
                          "another partition): plain tables keep each id's first row, and the later ones are "
                          "deleted with their embeddings and scores")
    estimate = estimate_seconds(rows)
    table = Table("table", "rows (estimate)", title=f"convert to {target}"
                  + (f" ({interval} ranges)" if target == "partitioned" else ""))
    for name, n in rows.items():
        table.add_row(name, f"{n:,}")
    console.print(table)
    console.print(
        f"estimated time: about {_minutes(estimate)} (about {_minutes(estimate_seconds(TYPICAL_MILLION))} per million "
        "events with one embedding and one score each, measured on a 2-core machine; a quiet, larger server is "
        "faster)\n"
        f"disk: about {size / 2**20:,.0f} MB more while it runs (a second copy of these tables until commit)\n"
        "locks: events, feedback, event_vectors and event_scores are locked against writes for the whole run "
        "(reads go on; ingestion and the pipeline's writes wait, so stop the collectors or let clients retry: "
        "the SDK queues and retries). One transaction: a failure or Ctrl-C changes nothing.\n"
        "afterwards: restart the collectors and workers (each pooled connection remembers the tables' shape).")
    if dry_run:
        console.print("dry run: nothing changed")
        return
    if not yes and not typer.confirm("convert now?"):
        raise typer.Exit(1)
    with Progress(TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        tasks = {name: bar.add_task(name, total=max(n, 1)) for name, n in rows.items()}

        def progress(note: Copied) -> None:
            bar.update(tasks[note.table], total=max(note.total, 1), completed=note.copied)

        try:
            with engine.begin() as conn:
                if target == "partitioned":
                    copied = to_partitioned(conn, interval, settings.partition_ahead_days, progress,
                                            lock_timeout_ms=LOCK_TIMEOUT_MS)
                else:
                    copied = to_plain(conn, progress, lock_timeout_ms=LOCK_TIMEOUT_MS)
                forget_partitioned_tables(conn)
        except SQLAlchemyError as exc:  # the transaction rolled back: nothing changed
            _fail(f"conversion failed, nothing changed: {str(exc).splitlines()[0]}")
        for name, task in tasks.items():
            bar.update(task, total=max(copied.get(name, 0), 1), completed=max(copied.get(name, 0), 1))
    console.print(f"converted to {target}: " + ", ".join(f"{n:,} {t}" for t, n in copied.items())
                  + "; restart the collectors and workers now")


def register(app: typer.Typer) -> None:
    app.add_typer(partitions, name="partitions")
