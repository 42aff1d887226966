"""Cookies, the signed-in operator of a request, and CSRF checks.

- The session cookie holds a random token signed with `DRIFTLOOP_SECRET_KEY` (itsdangerous); the database
  holds its SHA-256, its expiry and the session's CSRF token. HttpOnly, SameSite (lax by default), Secure
  outside local mode. Logout deletes the row, so a copied cookie stops working too.
- Every POST form carries the session's CSRF token (`csrf_token`); the sign-in form, which has no session
  yet, carries a nonce that must match a signed, short-lived cookie of its own (double submit).
- Only the cookie opens the UI: an `Authorization` header (a project API key, even an admin one) is never
  looked at here.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from itsdangerous import BadSignature, TimestampSigner
from starlette.responses import Response

from monitor.api.deps import SessionDep
from monitor.settings import Settings
from monitor.ui.accounts import CurrentOperator, resolve_session

SESSION_COOKIE = "driftloop_session"
LOGIN_COOKIE = "driftloop_login"
LOGIN_NONCE_SECONDS = 3600
CSRF_FIELD = "csrf_token"


class LoginRequired(Exception):
    """No valid session: the handler installed by `monitor.ui.install` redirects to the sign-in page."""

    def __init__(self, next_path: str):
        super().__init__(next_path)
        self.next_path = next_path


class PageError(Exception):
    """A UI request that cannot be served (unknown project, version, window): an error page, not JSON."""

    def __init__(self, status_code: int, message: str):
        super().__init__(message)
        self.status_code = status_code


class CsrfRejected(Exception):
    """A form without the right CSRF token: refused (403) before anything is read or changed."""


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _signer(settings: Settings, purpose: str) -> TimestampSigner:
    return TimestampSigner(settings.secret_key, salt=f"driftloop.ui.{purpose}")


def set_cookie(response: Response, settings: Settings, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/ui", httponly=True,
                        secure=settings.ui_cookies_secure, samesite=settings.ui_cookie_samesite)


def clear_cookie(response: Response, settings: Settings, name: str) -> None:
    response.delete_cookie(name, path="/ui", httponly=True, secure=settings.ui_cookies_secure,
                           samesite=settings.ui_cookie_samesite)


def sign_session_token(settings: Settings, token: str) -> str:
    return _signer(settings, "session").sign(token).decode("ascii")


def session_token(request: Request) -> str | None:
    """The session token of the request's cookie, if its signature is ours and it is not too old."""
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    settings = settings_of(request)
    try:
        token = _signer(settings, "session").unsign(raw, max_age=int(settings.ui_session_hours * 3600))
    except BadSignature:
        return None
    return token.decode("ascii")


def safe_next(path: str | None) -> str:
    """Only a path inside the UI may be a post-sign-in target (no open redirect to another site)."""
    if path and path.startswith("/ui/") and not path.startswith("//") and "\\" not in path and "\n" not in path:
        return path
    return "/ui/"


def login_url(next_path: str) -> str:
    return f"/ui/login?next={quote(safe_next(next_path), safe='/')}"


def optional_operator(request: Request, session: SessionDep) -> CurrentOperator | None:
    token = session_token(request)
    return resolve_session(session, token) if token else None


def require_operator(request: Request, session: SessionDep) -> CurrentOperator:
    operator = optional_operator(request, session)
    if operator is None:
        next_path = request.url.path if request.method == "GET" else "/ui/"
        if request.method == "GET" and request.url.query:
            next_path += "?" + request.url.query
        raise LoginRequired(next_path)
    return operator


OperatorDep = Annotated[CurrentOperator, Depends(require_operator)]


async def require_form_operator(request: Request, operator: OperatorDep) -> CurrentOperator:
    """The signed-in operator of a POST form whose CSRF token matches their session's."""
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), operator.csrf_token.encode()):
        raise CsrfRejected("the form's security token is missing or wrong; reload the page and submit it again")
    return operator


FormOperatorDep = Annotated[CurrentOperator, Depends(require_form_operator)]


def new_login_nonce(settings: Settings) -> tuple[str, str]:
    """(nonce for the form, signed value for the cookie)."""
    nonce = secrets.token_urlsafe(24)
    return nonce, _signer(settings, "login").sign(nonce).decode("ascii")


def login_nonce_ok(request: Request, sent: str | None) -> bool:
    raw = request.cookies.get(LOGIN_COOKIE)
    if not raw or not sent:
        return False
    try:
        nonce = _signer(settings_of(request), "login").unsign(raw, max_age=LOGIN_NONCE_SECONDS).decode("ascii")
    except BadSignature:
        return False
    return hmac.compare_digest(nonce.encode(), sent.encode())
