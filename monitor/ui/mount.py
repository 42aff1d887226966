"""The approval UI, served by the collector under /ui: sign-in, overview, alerts, webhooks, drift reports.

Server-rendered (Jinja2), inline-SVG charts, no JavaScript and nothing loaded from elsewhere. The model pages
(challenger, decisions) belong to `retrain` and are added by it through `add_section` / `add_nav` and its
own router, mounted at the collector app's entry point.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor.ui.render import OverviewSection, make_environment, render
from monitor.ui.security import CsrfRejected, LoginRequired, PageError, login_url

STATIC = Path(__file__).parent / "static"
# Pages are built from this server only: no inline script, no outside resource, never framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def install(app: FastAPI) -> None:
    """Mount the UI on the collector app (called once by `create_app`)."""
    from monitor.ui import routes_auth, routes_drift, routes_events, routes_pages, routes_settings, routes_triage
    from monitor.ui.drift_report import ReportUnavailable

    app.state.ui_env = make_environment()
    app.state.ui_sections = []
    app.state.ui_nav = [("overview", "/ui/p/{slug}/"), ("drift", "/ui/p/{slug}/drift"),
                        ("events", "/ui/p/{slug}/events"), ("alerts", "/ui/p/{slug}/alerts"),
                        ("webhooks", "/ui/p/{slug}/webhooks"), ("settings", "/ui/p/{slug}/settings")]
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    app.include_router(routes_auth.router)
    app.include_router(routes_pages.router)
    app.include_router(routes_drift.router)
    app.include_router(routes_settings.router)
    app.include_router(routes_events.router)
    app.include_router(routes_triage.router)

    @app.exception_handler(LoginRequired)
    async def _to_sign_in(_: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(login_url(exc.next_path), status_code=303)

    @app.exception_handler(CsrfRejected)
    async def _csrf_refused(request: Request, exc: CsrfRejected) -> Response:
        return render(request, "error.html", {"title": "Refused", "message": str(exc)}, operator=None,
                      status_code=403)

    # The services' errors (`monitor.errors`) raised under /ui/ are answered with this page by the app's one
    # handler of them (`monitor.api.errors`); the UI's own PageError and the drift report's refusals likewise.
    app.state.error_page = error_page

    @app.exception_handler(PageError)
    async def _page_error(request: Request, exc: PageError) -> Response:
        return error_page(request, exc.status_code, str(exc))

    @app.exception_handler(ReportUnavailable)
    async def _report_unavailable(request: Request, exc: ReportUnavailable) -> Response:
        return error_page(request, exc.status_code, str(exc))

    app.add_middleware(UiSecurityHeaders)


class UiSecurityHeaders:
    """ASGI middleware: `SECURITY_HEADERS` on every /ui response that does not set its own. Plain ASGI, so the
    other routes (ingestion above all) pass straight through (BaseHTTPMiddleware cost every request a task group
    and memory streams)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/ui"):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)


def error_page(request: Request, status_code: int, message: str) -> Response:
    """The UI's error page: the status as its title, the message as its text."""
    title = {404: "Not found", 409: "Conflict", 422: "Invalid input"}.get(status_code, "Error")
    return render(request, "error.html", {"title": title, "message": message}, operator=None,
                  status_code=status_code)


def add_section(app: FastAPI, section: OverviewSection) -> None:
    """Add a block to every project's card on the overview (e.g. the champion and pending challengers)."""
    app.state.ui_sections.append(section)


def add_nav(app: FastAPI, label: str, path_template: str) -> None:
    """Add a project page to the navigation; `{slug}` in the path is the project's slug."""
    app.state.ui_nav.append((label, path_template))
