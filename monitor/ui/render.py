"""Templates of the UI: one Jinja environment per app (autoescaped), extended by optional packages.

`monitor.ui.install` creates it with this package's templates; the model pages of `retrain` add their own
folder to it. Pages are rendered with the request (for the signed-in operator, the CSRF token and the nav).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy.orm import Session
from starlette.responses import HTMLResponse

from monitor.models import Project
from monitor.ui.accounts import CurrentOperator
from monitor.ui.drift_report import window_key
from monitor.ui.security import CSRF_FIELD

TEMPLATES = Path(__file__).parent / "templates"
# An optional package's addition to a project's overview card: rendered HTML for (request, session, project).
OverviewSection = Callable[[Request, Session, Project], Markup]


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 10**digits else f"{value:,.0f}"
    return str(value)


def _window(value: datetime | str) -> str:
    return window_key(datetime.fromisoformat(value) if isinstance(value, str) else value)


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def make_environment() -> Environment:
    env = Environment(loader=ChoiceLoader([FileSystemLoader(str(TEMPLATES))]),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters.update(when=_when, num=_num, pretty_json=_pretty_json, window=_window)
    env.globals["csrf_field"] = CSRF_FIELD
    return env


def add_template_folder(env: Environment, folder: Path) -> None:
    """Let an optional package's templates be found (after this package's own)."""
    loader = env.loader
    assert isinstance(loader, ChoiceLoader)
    loader.loaders = [*loader.loaders, FileSystemLoader(str(folder))]


def render(request: Request, template: str, context: dict[str, Any], *, operator: CurrentOperator | None,
           status_code: int = 200) -> HTMLResponse:
    env: Environment = request.app.state.ui_env
    project = context.get("project")
    body = env.get_template(template).render(
        request=request, operator=operator, csrf_token=operator.csrf_token if operator else "",
        nav=request.app.state.ui_nav if isinstance(project, Project) else [], **context)
    return HTMLResponse(body, status_code=status_code)


def render_fragment(request: Request, template: str, context: dict[str, Any]) -> Markup:
    env: Environment = request.app.state.ui_env
    return Markup(env.get_template(template).render(request=request, **context))
