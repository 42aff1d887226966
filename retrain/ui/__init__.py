"""The model pages of the approval UI (challenger page, decisions, versions), mounted on the collector app.

`install(app)` adds this package's templates, routes, the overview's champion/challenger block and the
"models" navigation link to the UI that `monitor.ui` set up.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from markupsafe import Markup
from sqlalchemy.orm import Session

from monitor.models import Project

TEMPLATES = Path(__file__).parent / "templates"


def overview_section(request: Request, session: Session, project: Project) -> Markup:
    """The project's champion and the challengers awaiting a decision."""
    from monitor.ui.render import render_fragment
    from retrain.registry.service import list_versions
    from retrain.ui.pages import overview_context

    context = overview_context(session, project.id, list_versions(session, project.id))
    return render_fragment(request, "retrain/overview_models.html", {"project": project, **context})


def install(app: FastAPI) -> None:
    from monitor.ui.mount import add_nav, add_section
    from monitor.ui.render import add_template_folder
    from retrain.ui.routes import router

    add_template_folder(app.state.ui_env, TEMPLATES)
    app.include_router(router)
    add_section(app, overview_section)
    add_nav(app, "models", "/ui/p/{slug}/models")
