"""CLI of projects: `driftloop projects list|show|metrics|config ...`. Settings change without SQL, validated by
the schema the pipeline reads, each change audited (`config history`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from monitor.cli_support import cli_actor, console, err
from monitor.cli_support import fail as _fail

projects = typer.Typer(no_args_is_help=True, help="Projects and their settings (window, reference, drift, bias...).")
config_app = typer.Typer(no_args_is_help=True, help="A project's settings: show, set, unset, apply a YAML file.")
projects.add_typer(config_app, name="config")
Slug = typer.Argument(..., help="Project slug.")
DryRun = typer.Option(False, "--dry-run", help="Validate and show the diff and the windows affected; change nothing.")
Recompute = typer.Option(False, "--recompute",
                         help="Also recompute the computed windows the change affects (else it applies from now on).")


def _show(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def _report(result: Any, as_json: bool) -> None:
    data = result.as_dict()
    if as_json:
        print(json.dumps(data, indent=2))
        return
    if not result.changes:
        console.print("no change")
        return
    table = Table("setting", "before", "after")
    for c in result.changes:
        table.add_row(c.key, _show(c.before), _show(c.after))
    console.print(table)
    plan = result.recompute
    if result.dry_run:
        console.print(f"dry run, nothing changed. {plan.describe()}"
                      + (" with --recompute" if plan.families and not plan.rebucket else ""), highlight=False,
                      soft_wrap=True)
    elif result.recomputed:
        console.print(f"[green]saved[/green] (change {result.change_id}). {plan.describe(done=True)} "
                      "(`driftloop run`, or the workers, computes them)", highlight=False, soft_wrap=True)
    else:
        note = (f"; {plan.windows} computed window(s) keep their values (--recompute to recompute them)"
                if plan.families and plan.windows else "")
        console.print(f"[green]saved[/green] (change {result.change_id}): applies to windows computed from now on"
                      f"{note}", highlight=False, soft_wrap=True)


def _change(slug: str, fn: Any, *args: Any, dry_run: bool, recompute: bool, as_json: bool) -> None:
    from monitor.db import session_scope
    from monitor.errors import FieldError, FieldErrors, NotFoundError
    from monitor.projects.service import get_project

    try:
        with session_scope() as s:
            result = fn(s, get_project(s, slug), *args, actor=cli_actor(" "), source="cli", dry_run=dry_run,
                        recompute=recompute)
    except FieldErrors as exc:
        for p in exc.problems:
            err.print(f"[red]error:[/red] {p.field}: {p.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except (FieldError, NotFoundError) as exc:
        _fail(str(exc))
    _report(result, as_json)


@projects.command("list")
def projects_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every project, with its event count and settings changed from the defaults."""
    from monitor.db import session_scope
    from monitor.projects.overview import project_rows

    with session_scope() as s:
        rows = project_rows(s)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("slug", "name", "events", "last event", "settings changed")
    for r in rows:
        table.add_row(r["slug"], r["name"], str(r["events"]), (r["last_event"] or "")[:16],
                      ", ".join(r["settings_changed"]) or "none (defaults)")
    console.print(table if rows else "no projects yet (`driftloop keys create SLUG` creates one)")


@projects.command("show")
def projects_show(slug: str = Slug, as_json: bool = typer.Option(False, "--json")) -> None:
    """A project: its counts, keys, and every setting (those changed from the default are marked)."""
    from monitor.db import session_scope
    from monitor.errors import NotFoundError
    from monitor.projects.overview import project_summary

    try:
        with session_scope() as s:
            data = project_summary(s, slug)
    except NotFoundError as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps(data, indent=2))
        return
    console.print(f"[bold]{data['slug']}[/bold] ({data['name']}): {data['events']} events, {data['keys']} live "
                  f"key(s), {data['windows_computed']} window(s) computed, last event {data['last_event'] or '—'}",
                  highlight=False)
    _settings_table(data["config"], set(data["settings_changed"]))
    for problem in data["config_errors"]:
        err.print(f"[red]invalid setting:[/red] {problem} (fix it with `driftloop projects config set|unset`)",
                  highlight=False, soft_wrap=True)


def _settings_table(config: dict[str, Any], changed: set[str]) -> None:
    table = Table("setting", "value", "")
    for key, value in config.items():
        table.add_row(key, _show(value), "set" if key in changed else "default")
    console.print(table)


@projects.command("metrics")
def projects_metrics(slug: str = Slug, as_json: bool = typer.Option(False, "--json"),
                     all_metrics: bool = typer.Option(False, "--all", help="Also list metrics not computed.")) -> None:
    """Which catalog metrics this project computes, and for those it does not, what would make it."""
    from monitor.db import session_scope
    from monitor.errors import NotFoundError
    from monitor.metrics.catalog import project_metrics
    from monitor.pipeline.config import project_config
    from monitor.projects.service import get_project

    try:
        with session_scope() as s:
            items = [m.as_dict() for m in project_metrics(project_config(get_project(s, slug)))]
    except NotFoundError as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps(items, indent=2))
        return
    table = Table("metric", "kind", "computed", "note")
    for m in items:
        if m["computed"] or all_metrics:
            table.add_row(str(m["name"]), str(m["kind"]), "yes" if m["computed"] else "no", str(m["note"]))
    console.print(table)
    skipped = sum(1 for m in items if not m["computed"])
    if skipped and not all_metrics:
        console.print(f"{skipped} more metric(s) are not computed by this project's settings (--all lists them)")


@config_app.command("show")
def config_show(slug: str = Slug, as_json: bool = typer.Option(False, "--json"),
                stored: bool = typer.Option(False, "--stored", help="Only what was set (what `apply` takes).")) -> None:
    """Every setting with its value (defaults filled in)."""
    import yaml

    from monitor.db import session_scope
    from monitor.errors import FieldErrors, NotFoundError
    from monitor.projects.config_service import effective
    from monitor.projects.service import get_project

    try:
        with session_scope() as s:
            raw = dict(get_project(s, slug).config or {})
        data = raw if stored else effective(raw)
    except (NotFoundError, FieldErrors) as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps(data, indent=2))
    elif stored:
        print(yaml.safe_dump(data, sort_keys=False), end="")
    else:
        _settings_table(data, set(raw))


@config_app.command("set")
def config_set(slug: str = Slug, key: str = typer.Argument(..., help="Setting, dotted for nested ones: "
                                                                        "window_seconds, reference.n, probes.axes."),
               value: str = typer.Argument(..., help="The value, as YAML: 1800, [mmd, knn], null, text."),
               dry_run: bool = DryRun, recompute: bool = Recompute,
               as_json: bool = typer.Option(False, "--json")) -> None:
    """Set one setting (validated; the change is audited)."""
    from monitor.projects.config_service import parse_value, set_key

    _change(slug, set_key, key, parse_value(value), dry_run=dry_run, recompute=recompute, as_json=as_json)


@config_app.command("unset")
def config_unset(slug: str = Slug, key: str = typer.Argument(..., help="Setting to put back to its default."),
                 dry_run: bool = DryRun, recompute: bool = Recompute,
                 as_json: bool = typer.Option(False, "--json")) -> None:
    """Put one setting back to its default."""
    from monitor.projects.config_service import unset_key

    _change(slug, unset_key, key, dry_run=dry_run, recompute=recompute, as_json=as_json)


@config_app.command("apply")
def config_apply(slug: str = Slug,
                 file: Path = typer.Argument(..., exists=True, dir_okay=False, help="YAML file of settings."),
                 dry_run: bool = DryRun, recompute: bool = Recompute,
                 as_json: bool = typer.Option(False, "--json")) -> None:
    """Make the project's settings exactly the file's (settings it omits go back to their defaults)."""
    from monitor.errors import FieldError
    from monitor.projects.config_service import change_config, load_config_file

    try:
        new = load_config_file(file.read_text(encoding="utf-8"))
    except FieldError as exc:
        _fail(f"{file}: {exc.message}")
    _change(slug, change_config, new, dry_run=dry_run, recompute=recompute, as_json=as_json)


@config_app.command("history")
def config_history(slug: str = Slug, limit: int = typer.Option(20, min=1, max=1000),
                   as_json: bool = typer.Option(False, "--json")) -> None:
    """Changes of the project's settings, newest first: when, by whom, what."""
    from monitor.db import session_scope
    from monitor.errors import NotFoundError
    from monitor.projects.config_service import change_view, history
    from monitor.projects.service import get_project

    try:
        with session_scope() as s:
            rows = [change_view(r) for r in history(s, get_project(s, slug).id, limit)]
    except NotFoundError as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("id", "when", "by", "via", "changes", "recomputed")
    for r in rows:
        changes = "; ".join(f"{c['key']}: {_show(c['before'])} → {_show(c['after'])}" for c in r["changes"])
        table.add_row(str(r["id"]), r["changed_at"][:16].replace("T", " "), r["actor"], r["source"], changes,
                      str(r["recomputed_windows"]))
    console.print(table if rows else "no changes yet: every setting is as created")


def register(app: typer.Typer) -> None:
    app.add_typer(projects, name="projects")
