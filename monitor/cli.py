"""The `driftloop` command line. Each command opens one session and commits once (the edge)."""

from __future__ import annotations

import os

import typer
from rich.table import Table

from monitor import __version__
from monitor.cli_support import console
from monitor.cli_support import fail as _fail

app = typer.Typer(no_args_is_help=True, add_completion=False, help="driftloop: keep LLM applications healthy.")
keys_app = typer.Typer(no_args_is_help=True, help="Project API keys and their scopes (stored hashed; shown once).")
app.add_typer(keys_app, name="keys")


# Commands that create or migrate their database themselves (the demo uses one of its own): not checked.
MANAGE_THEIR_DATABASE = frozenset({"migrate", "serve", "demo", "worker", "beat", "version"})


@app.callback()
def _every_command(ctx: typer.Context) -> None:
    # Before any command first touches the database: is it there, reachable and migrated? One line if not
    # (monitor/readiness.py); `--help` and commands that never open a session are not held up by it.
    from monitor import readiness

    if ctx.invoked_subcommand in MANAGE_THEIR_DATABASE:
        return
    readiness.enable(_fail)
    ctx.call_on_close(lambda: readiness.enable(None))


@app.command()
def version() -> None:
    """Print the driftloop version."""
    console.print(f"driftloop {__version__}")


@app.command()
def migrate(
    revision: str = typer.Argument("head", help="Target revision (upgrade), e.g. head."),
    down: bool = typer.Option(False, "--down", help="Downgrade to REVISION instead (e.g. -1 or base)."),
    wait: float | None = typer.Option(
        None, "--wait", min=0, metavar="SECONDS",
        help="Change nothing: wait up to SECONDS for another process (a migration Job) to bring the schema to "
             "head; exit 1 if it does not."),
) -> None:
    """Upgrade (or downgrade) the database schema."""
    from monitor import migrations
    from monitor.settings import get_settings

    url = get_settings().database_url
    if wait is not None:
        _wait_for_head(url, wait)
        return
    target = ("-1" if revision == "head" else revision) if down else revision
    try:
        (migrations.downgrade if down else migrations.upgrade)(url, target)
    except Exception as exc:
        _fail(f"migration failed on {_redact(url)}: {exc}")
    console.print(f"[green]database {'downgraded' if down else 'upgraded'} to {target}[/green] ({_redact(url)})")


def _wait_for_head(url: str, seconds: float) -> None:
    # Kubernetes runs the upgrade once, in a Job; the workers, beat and the model server start only when it is
    # done (an init container runs this), so no process of a new version meets an old schema.
    import time

    from monitor import readiness

    deadline = time.monotonic() + seconds
    while True:
        try:
            readiness.check_database(url)
        except readiness.NotReady as exc:
            if time.monotonic() >= deadline:
                _fail(f"schema not at head after {seconds:g}s: {exc}")
            time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
            continue
        console.print(f"[green]database at head[/green] ({_redact(url)})")
        return


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Bind address (0.0.0.0 inside a container)."),
    port: int = typer.Option(8000, help="Port."),
    workers: int = typer.Option(1, help="Uvicorn worker processes."),
    migrate_first: bool = typer.Option(True, "--migrate/--no-migrate", help="Upgrade the schema before serving."),
    log_level: str = typer.Option("info"),
    access_log: bool = typer.Option(False, "--access-log/--no-access-log",
                                    help="Log every request (method, path, status; never headers or bodies)."),
) -> None:
    """Run the collector API (and UI)."""
    import shutil
    import tempfile

    import uvicorn

    from monitor import migrations
    from monitor.api.header_limit import server_limit
    from monitor.api.health_routes import multiprocess_mode
    from monitor.settings import get_settings

    if migrate_first:
        migrations.upgrade()
    shared_metrics = None
    if workers > 1 and not multiprocess_mode():
        # Each worker process counts its own requests; /metrics must report the sum whichever worker answers the
        # scrape. prometheus_client reads this before the workers (spawned afterwards) create their metrics.
        shared_metrics = tempfile.mkdtemp(prefix="driftloop-prometheus-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = shared_metrics
    try:
        # h11, not httptools: h11 stops reading a request whose line and headers exceed its limit while they
        # arrive (monitor/api/header_limit.py answers 431 to what is over DRIFTLOOP_MAX_HEADER_BYTES but under it).
        uvicorn.run(
            "monitor.api.app:create_app", factory=True, host=host, port=port, workers=workers,
            log_level=log_level, access_log=access_log, log_config=_log_config(log_level),
            http="h11", h11_max_incomplete_event_size=server_limit(get_settings().max_header_bytes),
        )
    finally:
        if shared_metrics is not None:
            shutil.rmtree(shared_metrics, ignore_errors=True)


def _log_config(level: str) -> dict[str, object]:
    """Uvicorn's logging, plus driftloop's own loggers (deliveries, rate limiting) at the same level."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    # uvicorn's "trace" (below DEBUG) is its own; driftloop's loggers go no lower than DEBUG.
    ours = {"handlers": ["default"], "level": "DEBUG" if level == "trace" else level.upper(), "propagate": False}
    config["loggers"].update({"monitor": ours, "retrain": dict(ours)})
    return config


@keys_app.command("create")
def keys_create(
    project: str = typer.Argument(..., help="Project slug; created if it does not exist."),
    name: str = typer.Option("default", help="A label for the key."),
    scope: list[str] = typer.Option(
        ["ingest"], "--scope", "-s",
        help="What the key may do: ingest (send events, feedback, traces), read (every GET), admin (rules, "
             "webhooks, model decisions, retraining; includes read). Repeat or comma-separate, e.g. "
             "--scope ingest,read. Default: ingest, what an application needs.",
    ),
) -> None:
    """Create an API key. The key is printed once and never stored."""
    from monitor.db import session_scope
    from monitor.projects.service import create_key

    try:
        with session_scope() as session:
            created = create_key(session, project, name, scopes=scope)
    except ValueError as exc:
        _fail(str(exc))
    console.print(f"project [bold]{created.project_slug}[/bold], key id {created.id} ({created.prefix}…), "
                  f"scopes: [bold]{' '.join(created.scopes)}[/bold]")
    console.print("Store this key now; it is not shown again:")
    print(created.key)


@keys_app.command("list")
def keys_list(project: str | None = typer.Option(None, help="Only this project.")) -> None:
    """List keys (prefixes and scopes only)."""
    from monitor.db import session_scope
    from monitor.projects.service import list_keys

    table = Table("id", "project", "name", "prefix", "scopes", "created", "revoked")
    with session_scope() as session:
        for key, proj in list_keys(session, project):
            table.add_row(str(key.id), proj.slug, key.name, key.prefix, key.scopes, f"{key.created_at:%Y-%m-%d %H:%M}",
                          f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key: str = typer.Argument(..., help="Key id or prefix (dl_xxxxxxxx).")) -> None:
    """Revoke a key; requests with it are refused from now on."""
    from monitor.db import session_scope
    from monitor.errors import NotFoundError
    from monitor.projects.service import revoke_key

    try:
        with session_scope() as session:
            row = revoke_key(session, key)
            prefix = row.prefix
    except (NotFoundError, ValueError) as exc:
        _fail(str(exc))
    console.print(f"revoked {prefix}")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<database url>"


def _register_commands() -> None:
    # The CLI is a composition root: it mounts the command groups of both packages, listed here.
    from monitor.alerts import cli as cli_alerts
    from monitor.dashboards import cli as cli_dashboards
    from monitor.demo import cli as cli_demo
    from monitor.evaluators.judge import cli as cli_judge
    from monitor.partitions import cli as cli_partitions
    from monitor.pipeline import cli as cli_pipeline
    from monitor.projects import cli as cli_projects
    from monitor.retention import cli as cli_retention
    from monitor.ui import cli as cli_ui
    from monitor.webhooks import cli as cli_webhooks
    from retrain import cli as retrain_cli

    cli_pipeline.register(app)
    cli_projects.register(app)
    cli_alerts.register(app)
    cli_webhooks.register(app)
    cli_ui.register(app)
    cli_dashboards.register(app)
    cli_retention.register(app)
    cli_partitions.register(app)
    cli_demo.register(app)
    cli_judge.register(app)
    retrain_cli.register(app)


_register_commands()


def main() -> None:
    from monitor import composition  # imported here: `driftloop --help` stays quick

    composition.wire()
    composition.install_action_handlers()
    app()


if __name__ == "__main__":
    main()
