"""CLI of the approval UI: `driftloop ui create-operator NAME` and friends. One session, one commit."""

from __future__ import annotations

import sys

import typer
from rich.table import Table

from monitor.cli_support import console
from monitor.cli_support import fail as _fail


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        # One line from stdin (scripts, the demo): the trailing newline is not part of the password.
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


ui = typer.Typer(no_args_is_help=True, help="Operators of the approval UI (/ui).")
stdin_opt = typer.Option(False, "--password-stdin", help="Read the password from the first line of stdin.")


@ui.command("create-operator")
def create(username: str = typer.Argument(..., help="Login name (a-z, 0-9, '.', '_', '-')."),
           password_stdin: bool = stdin_opt) -> None:
    """Create an operator account (the password is prompted for, or read from stdin)."""
    from monitor.db import session_scope
    from monitor.ui.accounts import AccountError, check_password, check_username, create_operator

    try:
        check_username(username)
        password = check_password(_read_password(password_stdin))
        with session_scope() as s:
            create_operator(s, username, password)
    except AccountError as exc:
        _fail(str(exc))
    console.print(f"operator [bold]{username}[/bold] created; sign in at /ui/login")


@ui.command("set-password")
def set_pw(username: str = typer.Argument(...), password_stdin: bool = stdin_opt) -> None:
    """Give an operator a new password (their open sessions end)."""
    from monitor.db import session_scope
    from monitor.ui.accounts import AccountError, check_password, set_password

    try:
        password = check_password(_read_password(password_stdin))
        with session_scope() as s:
            set_password(s, username, password)
    except AccountError as exc:
        _fail(str(exc))
    console.print(f"password of [bold]{username}[/bold] changed; their sessions were ended")


@ui.command("disable-operator")
def disable(username: str = typer.Argument(...),
            enable: bool = typer.Option(False, "--enable", help="Enable the account again instead.")) -> None:
    """Disable (or with --enable, re-enable) an operator; disabling ends their sessions."""
    from monitor.db import session_scope
    from monitor.ui.accounts import AccountError, set_disabled

    try:
        with session_scope() as s:
            set_disabled(s, username, not enable)
    except AccountError as exc:
        _fail(str(exc))
    console.print(f"operator [bold]{username}[/bold] {'enabled' if enable else 'disabled'}")


@ui.command("operators")
def operators() -> None:
    """List operator accounts."""
    from monitor.db import session_scope
    from monitor.ui.accounts import list_operators

    table = Table("username", "created", "last sign-in", "disabled")
    with session_scope() as s:
        for o in list_operators(s):
            table.add_row(o.username, f"{o.created_at:%Y-%m-%d %H:%M}",
                          f"{o.last_login_at:%Y-%m-%d %H:%M}" if o.last_login_at else "",
                          f"{o.disabled_at:%Y-%m-%d %H:%M}" if o.disabled_at else "")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(ui, name="ui")
