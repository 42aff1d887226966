"""CLI of the loop: `driftloop models …`, `driftloop retrain start|status`, `driftloop serve-model`.

Registered by `monitor.cli` when `retrain` is installed. Each command opens its own sessions and commits at
the edge, like the other commands.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from monitor import principals
from monitor.cli_support import cli_actor, console
from monitor.cli_support import fail as _fail
from monitor.cli_support import lookup_project_id as _project_id

models_app = typer.Typer(no_args_is_help=True, help="The model registry: versions, aliases, decisions.")
retrain_app = typer.Typer(no_args_is_help=True, help="Retraining jobs: start one, follow its progress.")
DONE = ("succeeded", "failed")



def _fmt(x: Any) -> str:
    return "—" if x is None else f"{x:.4g}" if isinstance(x, float) else str(x)


@models_app.command("list")
def models_list(project: str = typer.Option(..., "-p", "--project"),
                as_json: bool = typer.Option(False, "--json")) -> None:
    """Versions, newest first, with their status and aliases."""
    from monitor.db import session_scope
    from retrain.registry.service import aliases_of, list_versions
    from retrain.registry.views import version_summary

    pid = _project_id(project)
    with session_scope() as s:
        aliases = aliases_of(s, pid)
        rows = [version_summary(v, aliases) for v in list_versions(s, pid)]
    if as_json:
        print(json.dumps({"aliases": aliases, "versions": rows}, indent=2))
        return
    if not rows:
        console.print("no versions yet (the base model becomes v0 when the project first needs it)")
        return
    table = Table("version", "status", "aliases", "gates", "eval loss", "dataset", "created by", "created")
    for r in rows:
        gates = {True: "[green]passed[/green]", False: "[red]failed[/red]", None: "—"}[r["gates_passed"]]
        table.add_row(r["name"], r["status"], ", ".join(r["aliases"]), gates, _fmt(r["eval_nll"]),
                      (r["dataset_hash"] or "—")[:12], r["created_by"], (r["created_at"] or "")[:16])
    console.print(table)


@models_app.command("show")
def models_show(version: str = typer.Argument(..., help="Version name, or champion / challenger."),
                project: str = typer.Option(..., "-p", "--project"),
                as_json: bool = typer.Option(False, "--json")) -> None:
    """One version: evaluation, gates, dataset, trigger, audit trail."""
    from monitor.db import session_scope
    from monitor.errors import NotFoundError
    from retrain.registry.service import aliases_of, audit_entries, get_version, version_names
    from retrain.registry.views import audit_dict, version_dict

    pid = _project_id(project)
    try:
        with session_scope() as s:
            v = get_version(s, pid, version)
            names = version_names(s, pid)
            body = version_dict(v, aliases_of(s, pid), names.get(v.parent_version_id or -1))
            body["audit"] = [audit_dict(e, names) for e in audit_entries(s, pid, version_id=v.id)]
    except NotFoundError as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps(body, indent=2, default=str))
        return
    console.print(f"[bold]{body['name']}[/bold] {body['status']} {' '.join(body['aliases'])}  "
                  f"base {body['base_model']}  adapter {body['adapter_path'] or '— (base model)'}")
    if body["dataset_hash"]:
        console.print(f"dataset {body['dataset_hash']} {body['dataset_stats']}")
    table = Table("gate", "result", "champion", "challenger", "limit", "reason")
    for g in body["gate_results"]:
        status = g.get("status") or ("skipped" if g["skipped"] else "passed" if g["passed"] else "failed")
        verdict = {"skipped": "skipped", "passed": "[green]pass[/green]",
                   "inconclusive": "[yellow]inconclusive[/yellow]"}.get(status, "[red]FAIL[/red]")
        table.add_row(g["name"], verdict, _fmt(g["champion"]), _fmt(g["challenger"]), _fmt(g["limit"]), g["reason"])
    if body["gate_results"]:
        console.print(table)
    for a in body["audit"]:
        who = a["principal"]["text"] if a["principal"] else "(not recorded)"
        console.print(f"  {a['at'][:19]}  {a['action']:<20} {a['actor']:<20} by {who:<28} {a['reason'] or ''}")


def _decide(decision: str, version: str, project: str, actor: str | None, reason: str | None,
            override: bool) -> None:
    from monitor.db import session_factory, session_scope
    from monitor.errors import NotFoundError
    from retrain.registry.service import ConflictError, approve, reject
    from retrain.registry.swap import change_champion

    pid = _project_id(project)
    who = actor or cli_actor(":")
    principal = principals.cli_user()  # --actor is a label; the audit log also records the OS user who ran this
    try:
        if decision in ("approve", "reject"):
            with session_scope() as s:
                v = (approve(s, pid, version, actor=who, reason=reason, override=override, principal=principal)
                     if decision == "approve"
                     else reject(s, pid, version, actor=who, reason=reason, principal=principal))
                console.print(f"{v.name} is now {v.status}")
            return
        swap, hook = change_champion(session_factory(), pid, "promote" if decision == "promote" else "rollback",
                                     version, actor=who, reason=reason, override=override, principal=principal)
    except (NotFoundError, ConflictError) as exc:
        _fail(str(exc))
    console.print(f"champion: {swap.current.name} (was {swap.previous.name if swap.previous else '—'})")
    if hook.url is not None:
        state = "ok" if hook.ok else f"[red]failed[/red] ({hook.error})"
        console.print(f"serving hook {hook.url}: {state if hook.called else hook.error}")


def _decision_command(decision: str, doc: str) -> None:
    def command(version: str = typer.Argument(..., help="Version name, or champion / challenger."),
                project: str = typer.Option(..., "-p", "--project"),
                actor: str | None = typer.Option(None, help="Who decides (default: cli:<user>)."),
                reason: str | None = typer.Option(None, help="Why (required with --override)."),
                override: bool = typer.Option(False, "--override",
                                              help="Pass a version that failed its gates (audited).")) -> None:
        _decide(decision, version, project, actor, reason, override)

    command.__doc__ = doc
    models_app.command(decision)(command)


_decision_command("approve", "Approve a candidate (a person's sign-off).")
_decision_command("reject", "Reject a candidate or approved version.")
_decision_command("promote", "Make a version the champion (moves the alias, calls the serving hook).")
_decision_command("rollback", "Give the champion alias back to the version the champion replaced.")


def follow_job(job_id: int, *, interval: float = 1.0, once: bool = False) -> dict[str, Any]:
    """Poll the job row and draw its progress until it finishes (the CLI's view of stored progress)."""
    from monitor.db import session_scope
    from retrain.jobs.service import job_dict
    from retrain.models import RetrainJob

    def read() -> dict[str, Any]:
        with session_scope() as s:
            job = s.get(RetrainJob, job_id)
            if job is None:
                _fail(f"no retraining job {job_id}")
            assert job is not None
            return job_dict(job)

    columns = (TextColumn("job {task.fields[job]} [bold]{task.fields[stage]}[/bold]"), BarColumn(),
               TaskProgressColumn(), TextColumn("{task.fields[note]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        view = read()
        task = bar.add_task("job", total=1.0, job=job_id, stage=view["stage"], note="")
        while True:
            loss = f"loss {view['losses'][-1]:.4f}" if view["losses"] else ""
            bar.update(task, completed=view["progress"], stage=view["stage"],
                       note=" ".join(x for x in (loss, view["message"] or "") if x)[:56])
            if once or view["status"] in DONE:
                break
            time.sleep(interval)  # polling the stored progress; the job itself runs elsewhere
            view = read()
    colour = {"succeeded": "green", "failed": "red"}.get(view["status"], "yellow")
    console.print(f"job {job_id}: [{colour}]{view['status']}[/{colour}] {view['message'] or ''}")
    return view


@retrain_app.command("start")
def retrain_start(project: str = typer.Option(..., "-p", "--project"),
                  actor: str | None = typer.Option(None, help="Who starts it (default: cli:<user>)."),
                  reason: str | None = typer.Option(None),
                  params: str | None = typer.Option(None, help='JSON overrides, e.g. {"lora": {"max_steps": 20}}.'),
                  follow: bool = typer.Option(True, "--follow/--no-follow", help="Show progress until done.")) -> None:
    """Build the dataset, train, evaluate and register a challenger (in this process in embedded mode)."""
    from monitor.db import session_scope
    from monitor.queue import runs_inline
    from monitor.settings import get_settings
    from retrain.jobs.config import ConfigError
    from retrain.jobs.service import JobConflict, create_job, dispatch

    pid = _project_id(project)
    try:
        overrides = json.loads(params) if params else {}
    except json.JSONDecodeError as exc:
        _fail(f"--params is not JSON: {exc}")
    who = actor or cli_actor(":")
    try:
        with session_scope() as s:
            job_id = create_job(s, pid, created_by=who, params=overrides, exclusive=True,
                                trigger={"kind": "manual", "actor": who, "reason": reason}).id
    except (ConfigError, JobConflict) as exc:
        _fail(str(exc))
    console.print(f"retraining job {job_id} created")
    settings = get_settings()
    if not runs_inline(settings):
        dispatch(job_id, settings=settings)
        console.print(f"queued on the gpu queue; follow it with: driftloop retrain status {job_id} -p {project}")
        if follow:
            view = follow_job(job_id)
            raise typer.Exit(0 if view["status"] == "succeeded" else 1)
        return
    worker = threading.Thread(target=dispatch, args=(job_id,), kwargs={"settings": settings}, daemon=True)
    worker.start()
    view = follow_job(job_id, once=not follow)
    worker.join()
    if follow and view["status"] != "succeeded":
        raise typer.Exit(1)


@retrain_app.command("status")
def retrain_status(job: int | None = typer.Argument(None, help="Job id (default: the project's latest)."),
                   project: str | None = typer.Option(None, "-p", "--project"),
                   follow: bool = typer.Option(True, "--follow/--once", help="Poll until the job finishes."),
                   interval: float = typer.Option(1.0, min=0.1, help="Seconds between polls.")) -> None:
    """Progress, stage and loss of a job, refreshed until it finishes."""
    from monitor.db import session_scope
    from retrain.jobs.service import list_jobs

    if job is None:
        if project is None:
            _fail("name a job id, or a project (-p) to follow its latest job")
        assert project is not None
        with session_scope() as s:
            latest = list_jobs(s, _project_id(project), limit=1)
            if not latest:
                _fail(f"project {project!r} has no retraining jobs yet")
            job = latest[0].id
    follow_job(job, interval=interval, once=not follow)


def erase_command(
    project: str = typer.Option(..., "-p", "--project"),
    session: str | None = typer.Option(None, "--session", help="Every event of this session id."),
    metadata: str | None = typer.Option(None, "--metadata", help="Every event whose metadata has key=value."),
    event: list[str] = typer.Option([], "--event", help="This client event id (repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would be erased."),
    reason: str | None = typer.Option(None, "--reason", help="Recorded in the audit entry."),
    actor: str | None = typer.Option(None, "--actor", help="Default: the OS user."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Erase a user's data: events, embeddings, scores, feedback, drift examples and training-set lines; lists
    the model versions trained on them and writes an audit entry."""
    from monitor.db import session_factory
    from monitor.privacy.erasure import Selector, parse_metadata
    from monitor.settings import get_settings
    from retrain.registry.erasure import erase

    try:
        sel = Selector(session_id=session, metadata=parse_metadata(metadata) if metadata else None,
                       event_ids=tuple(event))
    except ValueError as exc:
        _fail(str(exc))
    pid = _project_id(project)
    out = erase(session_factory(), pid, sel, actor=actor or cli_actor(":"), reason=reason,
                batch_size=get_settings().retention_batch_size, dry_run=dry_run)
    if as_json:
        print(json.dumps(out.as_dict(), indent=2))
        return
    verb = "would erase" if dry_run else "erased"
    e = out.events
    console.print(f"{verb}: {e.events} events, {e.vectors} embeddings, {e.scores} scores, {e.feedback} feedback, "
                  f"{out.snapshot_lines} training-set lines" + ("" if dry_run else f", {e.metric_examples} drift "
                  f"examples; audit entry {out.audit_id}"))
    if out.versions:
        console.print(f"model versions trained on this data: {', '.join(out.versions)}")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
    app.add_typer(retrain_app, name="retrain")
    app.command("erase")(erase_command)

    @app.command("serve-model")
    def serve_model(project: str | None = typer.Option(None, "-p", "--project",
                                                       help="Default: DRIFTLOOP_MODEL_SERVER_PROJECT."),
                    host: str = typer.Option("127.0.0.1"), port: int = typer.Option(8100),
                    log_level: str = typer.Option("info")) -> None:
        """Serve the project's champion (and canary challenger) as OpenAI-compatible chat completions."""
        import uvicorn

        from monitor.errors import NotFoundError
        from retrain.serving.server import create_model_server

        try:
            server = create_model_server(project=project)
        except (NotFoundError, ValueError) as exc:
            _fail(str(exc))
        uvicorn.run(server, host=host, port=port, log_level=log_level, access_log=False)
