"""CLI of alerting: `driftloop alerts ...` (rules from YAML, alerts, action requests), a module-level Typer app.

Each command opens one session and commits once; webhooks it causes go out after that commit.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from monitor.cli_support import ProjectOpt, console, err
from monitor.cli_support import fail as _fail
from monitor.cli_support import project_id as _project_id
from monitor.cli_support import short_time as _short

alerts = typer.Typer(no_args_is_help=True, help="Alert rules, alerts and their actions.")
rules = typer.Typer(no_args_is_help=True, help="Alert rules (keep them in a YAML file under version control).")
alerts.add_typer(rules, name="rules")


@rules.command("list")
def rules_list(project: str = ProjectOpt, as_json: bool = typer.Option(False, "--json")) -> None:
    """List the project's rules."""
    from monitor.alerts.rule_service import list_rules, rule_view
    from monitor.db import session_scope
    from monitor.errors import NotFoundError

    try:
        with session_scope() as s:
            data = [rule_view(r) for r in list_rules(s, _project_id(s, project))]
    except NotFoundError as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps(data, indent=2))
        return
    table = Table("name", "metric", "condition", "segment", "for", "cooldown", "severity", "actions", "on")
    for r in data:
        actions = ", ".join(a["type"] + (":" + "+".join(a["endpoints"]) if a.get("endpoints") else "")
                            for a in r["actions"])
        table.add_row(r["name"], r["metric"], f"{r['field']} {r['comparator']} {r['threshold']:g}", r["segment"],
                      str(r["for_windows"]), f"{r['cooldown']}s", r["severity"], actions,
                      "yes" if r["enabled"] else "no")
    console.print(table if data else "no alert rules")


@rules.command("apply")
def rules_apply(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="YAML rule file."),
    project: str | None = typer.Option(None, "--project", "-p", help="Project slug (else the file's project:)."),
    prune: bool = typer.Option(False, "--prune", help="Delete rules the file does not name."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would change; change nothing."),
) -> None:
    """Create or update the rules of a YAML file (matched by name)."""
    from monitor.alerts.rule_service import apply_rules, rule_warnings
    from monitor.alerts.rules import RuleFileError, parse_rule_file
    from monitor.db import session_scope
    from monitor.errors import FieldError, NotFoundError
    from monitor.projects.service import get_project

    try:
        parsed = parse_rule_file(file.read_bytes())
        slug = project or parsed.project
        if not slug:
            _fail("name the project with --project or a top-level `project:` in the file")
        with session_scope() as s:
            report = apply_rules(s, _project_id(s, slug), parsed.rules, prune=prune)
            warnings = rule_warnings(get_project(s, slug), parsed.rules)
            if dry_run:
                s.rollback()
    except RuleFileError as exc:
        for p in exc.problems:
            err.print(f"[red]invalid:[/red] {file}: {p.field}: {p.message}", highlight=False)
        raise typer.Exit(1) from None
    except (FieldError, NotFoundError) as exc:
        _fail(f"{file}: {exc}")
    prefix = "would be " if dry_run else ""
    for verb in ("created", "updated", "deleted", "unchanged"):
        names = getattr(report, verb)
        if names:
            console.print(f"{prefix}{verb}: {', '.join(names)}")
    for warning in warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)


@rules.command("delete")
def rules_delete(name: str = typer.Argument(...), project: str = ProjectOpt) -> None:
    """Delete a rule and its alert history (set `enabled: false` to keep the history)."""
    from monitor.alerts.rule_service import delete_rule
    from monitor.db import session_scope
    from monitor.errors import NotFoundError

    try:
        with session_scope() as s:
            delete_rule(s, _project_id(s, project), name)
    except NotFoundError as exc:
        _fail(str(exc))
    console.print(f"deleted rule {name}")


@alerts.command("list")
def alerts_list(
    project: str = ProjectOpt, status: str | None = typer.Option(None, help="pending|firing|resolved|cancelled"),
    limit: int = typer.Option(50, min=1, max=1000), as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List alerts, newest first, with their transitions."""
    from monitor.alerts.queries import alert_views, list_alerts
    from monitor.db import session_scope
    from monitor.errors import NotFoundError

    try:
        with session_scope() as s:
            data = alert_views(s, list_alerts(s, _project_id(s, project), status=status, limit=limit))
    except NotFoundError as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps(data, indent=2))
        return
    table = Table("id", "rule", "segment", "severity", "status", "started", "fired", "ended", "last change")
    for a in data:
        last = a["transitions"][-1] if a["transitions"] else None
        table.add_row(str(a["id"]), a["rule"], a["segment"], a["severity"], a["status"],
                      _short(a["started_window"]), _short(a["fired_window"]), _short(a["ended_window"]),
                      f"{last['from']}→{last['to']}: {last['reason']}" if last else "")
    console.print(table if data else "no alerts")


@alerts.command("actions")
def actions_list(project: str = ProjectOpt, status: str | None = typer.Option(None)) -> None:
    """List action requests (e.g. retrain) made by firing alerts."""
    from monitor.alerts.actions import action_request_dict, list_action_requests
    from monitor.db import session_scope
    from monitor.errors import NotFoundError

    try:
        with session_scope() as s:
            data = [action_request_dict(r) for r in list_action_requests(s, _project_id(s, project),
                                                                         status=status)]
    except NotFoundError as exc:
        _fail(str(exc))
    table = Table("id", "alert", "action", "status", "created", "error")
    for r in data:
        table.add_row(str(r["id"]), str(r["alert_id"]), r["action"], r["status"], _short(r["created_at"]),
                      r["error"] or "")
    console.print(table if data else "no action requests")


def register(app: typer.Typer) -> None:
    app.add_typer(alerts, name="alerts")
