"""CLI of webhook endpoints: `driftloop webhooks add|list|rotate|enable|disable|deliveries|redeliver`."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from monitor.cli_support import ProjectOpt, console
from monitor.cli_support import fail as _fail
from monitor.cli_support import project_id as _project_id
from monitor.cli_support import short_time as _short

hooks = typer.Typer(no_args_is_help=True, help="Webhook endpoints (Standard Webhooks, signed) and deliveries.")


@hooks.command("add")
def add(
    name: str = typer.Argument(..., help="Endpoint name, used by rules' webhook actions."),
    url: str = typer.Argument(..., help="http(s) URL of the receiver."),
    project: str = ProjectOpt,
    event: list[str] = typer.Option([], "--event", "-e", help="Event type or glob (repeatable); default all."),
    payload_format: str = typer.Option("standard", "--format", help="standard or slack."),
    description: str = typer.Option("", help="A note for people."),
) -> None:
    """Create an endpoint. Its signing secret is printed once and never shown again."""
    from pydantic import ValidationError

    from monitor.db import session_scope
    from monitor.errors import ConflictError, FieldError, NotFoundError
    from monitor.settings import get_settings
    from monitor.webhooks.endpoints import EndpointSpec, create_endpoint

    try:
        spec = EndpointSpec(name=name, url=url, event_types=event, payload_format=payload_format,
                            description=description)
        with session_scope() as s:
            created = create_endpoint(s, _project_id(s, project), spec, settings=get_settings())
    except ValidationError as exc:
        _fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False)))
    except (ConflictError, FieldError, NotFoundError) as exc:
        _fail(str(exc))
    console.print(f"endpoint [bold]{name}[/bold] → {created.endpoint.url}")
    console.print("Signing secret (store it in the receiver now; it is not shown again):")
    print(created.secret)


@hooks.command("list")
def list_(project: str = ProjectOpt) -> None:
    """List endpoints (never their secrets)."""
    from monitor.db import session_scope
    from monitor.errors import NotFoundError
    from monitor.webhooks.endpoints import endpoint_view, list_endpoints

    try:
        with session_scope() as s:
            data = [endpoint_view(e) for e in list_endpoints(s, _project_id(s, project))]
    except NotFoundError as exc:
        _fail(str(exc))
    table = Table("name", "url", "events", "format", "enabled", "note")
    for e in data:
        table.add_row(e["name"], e["url"], ", ".join(e["event_types"]) or "all", e["payload_format"],
                      "yes" if e["enabled"] else "no", e["disabled_reason"] or e["description"])
    console.print(table if data else "no webhook endpoints")


@hooks.command("rotate")
def rotate(
    name: str = typer.Argument(...), project: str = ProjectOpt,
    grace: str | None = typer.Option(None, help="How long the old secret keeps signing (e.g. 1d, 6h, 0)."),
) -> None:
    """Rotate the signing secret; prints the new one once. Both sign during the grace period."""
    from monitor.alerts.rules import parse_duration
    from monitor.db import session_scope
    from monitor.errors import NotFoundError
    from monitor.settings import get_settings
    from monitor.webhooks.endpoints import rotate_secret

    try:
        seconds = parse_duration(grace) if grace is not None else None
        with session_scope() as s:
            rotated = rotate_secret(s, _project_id(s, project), name, settings=get_settings(),
                                    grace_seconds=seconds)
            until = rotated.endpoint.previous_secret_expires_at
    except (NotFoundError, ValueError) as exc:
        _fail(str(exc))
    console.print(f"rotated; the old secret signs until {until.isoformat() if until else 'now (no grace)'}")
    console.print("New signing secret (not shown again):")
    print(rotated.secret)


def _set_enabled(name: str, project: str, enabled: bool) -> None:
    from monitor.db import session_scope
    from monitor.errors import FieldError, NotFoundError
    from monitor.settings import get_settings
    from monitor.webhooks.endpoints import EndpointPatch, update_endpoint

    try:
        with session_scope() as s:
            update_endpoint(s, _project_id(s, project), name, EndpointPatch(enabled=enabled),
                            settings=get_settings())
    except (NotFoundError, FieldError) as exc:
        _fail(str(exc))
    console.print(f"endpoint {name} {'enabled' if enabled else 'disabled'}")


@hooks.command("enable")
def enable(name: str = typer.Argument(...), project: str = ProjectOpt) -> None:
    """Enable an endpoint again (e.g. after a 410 Gone disabled it)."""
    _set_enabled(name, project, True)


@hooks.command("disable")
def disable(name: str = typer.Argument(...), project: str = ProjectOpt) -> None:
    """Stop sending to an endpoint."""
    _set_enabled(name, project, False)


@hooks.command("deliveries")
def deliveries(
    project: str = ProjectOpt, endpoint: str | None = typer.Option(None),
    status: str | None = typer.Option(None, help="pending|succeeded|failed"),
    limit: int = typer.Option(50, min=1, max=1000), as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The delivery log, newest first, with every attempt."""
    from monitor.db import session_scope
    from monitor.errors import NotFoundError
    from monitor.webhooks.outbox import attempts_of, delivery_dict, list_deliveries

    try:
        with session_scope() as s:
            rows = list_deliveries(s, _project_id(s, project), endpoint=endpoint, status=status, limit=limit)
            attempts = attempts_of(s, [d.id for d, _, _ in rows])
            data = [delivery_dict(d, m, e, attempts[d.id]) for d, m, e in rows]
    except NotFoundError as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps(data, indent=2))
        return
    table = Table("id", "event", "endpoint", "status", "attempts", "last", "next attempt", "log")
    for d in data:
        log = " ".join(f"{a['status_code'] or 'ERR'}/{a['latency_ms']:.0f}ms" for a in d["attempt_log"])
        table.add_row(str(d["id"]), d["event_type"], d["endpoint"], d["status"], str(d["attempts"]),
                      str(d["last_status_code"] or d["last_error"] or ""), _short(d["next_attempt_at"]), log)
    console.print(table if data else "no deliveries")


@hooks.command("redeliver")
def redeliver_cmd(delivery_id: int = typer.Argument(...), project: str = ProjectOpt) -> None:
    """Send a delivery again now (one manual attempt; queued when the runner is Celery)."""
    from monitor.db import session_scope
    from monitor.errors import ConflictError, NotFoundError
    from monitor.queue import runs_inline
    from monitor.settings import get_settings
    from monitor.webhooks.outbox import attempts_of, get_delivery, redeliver

    settings = get_settings()
    try:
        with session_scope() as s:
            pid = _project_id(s, project)
            before = get_delivery(s, pid, delivery_id).attempts
            redeliver(s, pid, delivery_id, settings=settings)
        if not runs_inline(settings):
            console.print(f"delivery {delivery_id} queued for a manual attempt")
            return
        with session_scope() as s:
            new = [a for a in attempts_of(s, [delivery_id])[delivery_id] if a.attempt > before]
    except (NotFoundError, ConflictError) as exc:
        _fail(str(exc))
    # The delivery's status is not the answer: a delivery that succeeded before stays `succeeded` when this
    # attempt is refused (a private address without DRIFTLOOP_WEBHOOK_ALLOW_PRIVATE) or fails.
    if not new:
        _fail(f"delivery {delivery_id}: no attempt was made")
    attempt = new[-1]
    answer = attempt.status_code or attempt.error or "no answer"
    if attempt.outcome != "succeeded":
        _fail(f"delivery {delivery_id}: attempt {attempt.attempt} {attempt.outcome} ({answer})")
    console.print(f"delivery {delivery_id}: attempt {attempt.attempt} succeeded ({answer})")


def register(app: typer.Typer) -> None:
    app.add_typer(hooks, name="webhooks")
