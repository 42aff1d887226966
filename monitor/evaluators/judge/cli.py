"""CLI of the LLM judge's stored keys: `driftloop judge-keys set|delete` (a key is never printed)."""

from __future__ import annotations

import typer

from monitor.cli_support import ProjectOpt, console
from monitor.cli_support import fail as _fail
from monitor.cli_support import project_id as _project_id

keys = typer.Typer(no_args_is_help=True, help="API keys of LLM-judge endpoints, stored sealed per project.")


@keys.command("set")
def set_key(name: str = typer.Argument(..., help="The key's name, referred to by a judge's params.api_key_name."),
            project: str = ProjectOpt) -> None:
    """Store (or replace) a key; it is read from a hidden prompt (or stdin), never from the command line."""
    from monitor.db import session_scope
    from monitor.errors import NotFoundError
    from monitor.evaluators.judge.keys import set_judge_key
    from monitor.settings import get_settings

    secret = typer.prompt("API key", hide_input=True).strip()
    try:
        with session_scope() as s:
            set_judge_key(s, _project_id(s, project), name, secret, settings=get_settings())
    except (NotFoundError, ValueError) as exc:
        _fail(str(exc))
    console.print(f"stored judge key {name!r}")


@keys.command("delete")
def delete_key(name: str = typer.Argument(...), project: str = ProjectOpt) -> None:
    from monitor.db import session_scope
    from monitor.errors import NotFoundError
    from monitor.evaluators.judge.keys import delete_judge_key

    try:
        with session_scope() as s:
            gone = delete_judge_key(s, _project_id(s, project), name)
    except NotFoundError as exc:
        _fail(str(exc))
    if not gone:
        _fail(f"no judge key named {name!r}")
    console.print(f"deleted judge key {name!r}")


def register(app: typer.Typer) -> None:
    app.add_typer(keys, name="judge-keys")
