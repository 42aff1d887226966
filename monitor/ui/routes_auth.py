"""Sign-in and sign-out of operators."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from monitor.api.deps import SessionDep
from monitor.ui.accounts import SignInRefused, authenticate, end_session, start_session
from monitor.ui.render import render
from monitor.ui.security import (
    LOGIN_COOKIE,
    LOGIN_NONCE_SECONDS,
    SESSION_COOKIE,
    FormOperatorDep,
    clear_cookie,
    login_nonce_ok,
    new_login_nonce,
    optional_operator,
    safe_next,
    set_cookie,
    settings_of,
    sign_session_token,
)

router = APIRouter(prefix="/ui", include_in_schema=False)


def _login_page(request: Request, next_path: str, *, error: str | None = None, username: str = "",
                status_code: int = 200) -> Response:
    settings = settings_of(request)
    nonce, signed = new_login_nonce(settings)
    response = render(request, "login.html", {"title": "Sign in", "next": safe_next(next_path), "nonce": nonce,
                                              "error": error, "username": username},
                      operator=None, status_code=status_code)
    set_cookie(response, settings, LOGIN_COOKIE, signed, LOGIN_NONCE_SECONDS)
    return response


@router.get("/login")
def login_form(request: Request, session: SessionDep, next: str = "/ui/") -> Response:
    if optional_operator(request, session) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, next)


@router.post("/login")
def login(request: Request, session: SessionDep, username: Annotated[str, Form(max_length=256)] = "",
          password: Annotated[str, Form(max_length=1024)] = "", nonce: Annotated[str, Form(max_length=128)] = "",
          next: Annotated[str, Form(max_length=2048)] = "/ui/") -> Response:
    settings = settings_of(request)
    if not login_nonce_ok(request, nonce):
        return _login_page(request, next, username=username, status_code=403,
                           error="the sign-in form expired or did not come from this site; please try again")
    if not username.strip() or not password:
        return _login_page(request, next, username=username, status_code=422,
                           error="enter both a username and a password")
    remote = request.client.host if request.client else None
    try:
        operator = authenticate(session, username, password, settings=settings, remote=remote)
    except SignInRefused as exc:
        session.commit()  # the failed attempt must count towards the lockout
        return _login_page(request, next, username=username, error=str(exc), status_code=401)
    signed_in = start_session(session, operator, settings=settings)
    session.commit()
    response = RedirectResponse(safe_next(next), status_code=303)
    set_cookie(response, settings, SESSION_COOKIE, sign_session_token(settings, signed_in.token),
               int(settings.ui_session_hours * 3600))
    clear_cookie(response, settings, LOGIN_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, session: SessionDep, operator: FormOperatorDep) -> Response:
    end_session(session, operator.session_id)
    session.commit()
    response = RedirectResponse("/ui/login", status_code=303)
    clear_cookie(response, settings_of(request), SESSION_COOKIE)
    return response
