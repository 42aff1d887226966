"""CLI of the Grafana dashboards: list the bundled ones, push them into an existing Grafana."""

from __future__ import annotations

import typer
from rich.table import Table

from monitor.cli_support import console, err

dashboards_app = typer.Typer(no_args_is_help=True, help="Grafana dashboards (Postgres data source).")


@dashboards_app.command("list")
def list_dashboards() -> None:
    """The bundled dashboards and where they are read from."""
    from monitor.dashboards import DashboardError, dashboards_dir, load_dashboards

    try:
        directory = dashboards_dir()
        found = load_dashboards(directory)
    except DashboardError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    table = Table("file", "uid", "title", "panels", title=str(directory))
    for name, d in found.items():
        table.add_row(f"{name}.json", d["uid"], d["title"], str(len(d.get("panels", []))))
    console.print(table)


@dashboards_app.command("push")
def push(
    url: str = typer.Option(..., "--url", help="Grafana's base URL, e.g. http://localhost:3000."),
    token: str = typer.Option(..., "--token", envvar="GRAFANA_TOKEN",
                              help="Service account token (Editor role or more); or set GRAFANA_TOKEN."),
    folder: str = typer.Option("driftloop", "--folder", help="Folder to put them in (created when missing)."),
    datasource_uid: str = typer.Option(
        "driftloop-postgres", "--datasource-uid",
        help="Uid of the Grafana data source that reads driftloop's Postgres database."),
    timeout: float = typer.Option(10.0, "--timeout", min=0.1, help="Seconds per HTTP request."),
) -> None:
    """Upload the dashboards into an existing Grafana, overwriting earlier uploads."""
    from monitor.dashboards import DashboardError, push_dashboards

    try:
        pushed = push_dashboards(url, token, folder=folder, datasource_uid=datasource_uid, timeout=timeout)
    except ImportError:
        err.print("[red]error:[/red] grafana-client is not installed: pip install 'driftloop[dashboards]'")
        raise typer.Exit(1) from None
    except DashboardError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(f"pushed {len(pushed)} dashboards to folder {folder!r}:")
    for p in pushed:  # plain lines, not a table: the URLs must stay whole to be clicked or copied
        console.print(f"  {p.name}: {p.url} (version {p.version})", soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(dashboards_app, name="dashboards")
