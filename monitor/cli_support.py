"""What every command group of the `driftloop` CLI shares: the consoles, the error exit, the project lookup."""

from __future__ import annotations

from typing import Any, NoReturn

import typer
from rich.console import Console

console = Console()
err = Console(stderr=True)
ProjectOpt = typer.Option(..., "--project", "-p", help="Project slug.")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `error: message` on stderr and exit with `code` (nothing has been changed by then)."""
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)  # one line, however narrow
    raise typer.Exit(code)


def project_id(session: Any, slug: str) -> int:
    """The id of the project `slug` (NotFoundError when there is none)."""
    from monitor.projects.service import get_project

    return get_project(session, slug).id


def short_time(ts: str | None) -> str:
    """An ISO timestamp cut to the minute, for tables."""
    return ts[:16].replace("T", " ") if ts else ""
