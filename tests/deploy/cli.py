"""Parsing a deployment's command lines with the real CLIs (driftloop's typer app, Celery's click app), without
running anything: shared by the compose and Kubernetes checks."""

from __future__ import annotations

from typing import Any

import click
import typer

from monitor.cli import app as cli_app


def parse_cli(group: click.Group, args: list[str], name: str, obj: Any = None) -> tuple[click.Command, click.Context]:
    """Resolve `args` through a click group to its (sub)command and parse the options, without running anything."""
    ctx = group.make_context(name, list(args), obj=obj)
    rest = [*(getattr(ctx, "_protected_args", None) or []), *ctx.args]
    sub_name, sub, sub_args = group.resolve_command(ctx, rest)
    assert sub is not None and sub_name is not None
    if isinstance(sub, click.Group):
        return parse_cli(sub, sub_args, sub_name, obj)
    return sub, sub.make_context(sub_name, sub_args, parent=ctx, obj=obj)


def driftloop(command: list[str]) -> tuple[click.Command, click.Context]:
    assert command[0] == "driftloop", command
    return parse_cli(typer.main.get_command(cli_app), command[1:], "driftloop")


def celery_cli(argv: list[str]) -> tuple[click.Command, click.Context]:
    """Parse a `celery …` command line with Celery's own CLI (it needs its app in the context for some options)."""
    from celery.bin.base import CLIContext
    from celery.bin.celery import celery

    from monitor.worker.app import celery_app

    assert argv[0] == "celery", argv
    return parse_cli(celery, argv[1:], "celery", CLIContext(app=celery_app, no_color=True, workdir=None, quiet=True))
