"""What every command group of the `driftloop` CLI shares: the consoles, the error exit, the project lookup."""

from __future__ import annotations

import getpass
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


def lookup_project_id(slug: str) -> int:
    """The id of the project `slug`, looked up in a session of its own; an unknown slug exits 1."""
    from monitor.db import session_scope
    from monitor.errors import NotFoundError

    try:
        with session_scope() as s:
            return project_id(s, slug)
    except NotFoundError as exc:
        fail(str(exc))


def project_ids(slug: str | None) -> list[int] | None:
    """`--project SLUG` as the id list the runners take (None: every project); an unknown slug exits 1."""
    return [lookup_project_id(slug)] if slug else None


def cli_actor(separator: str) -> str:
    """Who acts from the command line, for audit rows: `cli<separator><OS user>`, or `cli` without a user name
    (some containers have none)."""
    try:
        return f"cli{separator}{getpass.getuser()}"
    except Exception:  # no user name in some containers
        return "cli"


def short_time(ts: str | None) -> str:
    """An ISO timestamp cut to the minute, for tables."""
    return ts[:16].replace("T", " ") if ts else ""
