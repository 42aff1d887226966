"""Sign-in, cookies, CSRF and logout through the real app (TestClient), on both backends."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

from fastapi.testclient import TestClient
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.api.app import create_app
from monitor.settings import Settings
from monitor.ui.models import LoginAttempt, Operator, OperatorSession
from monitor.ui.mount import SECURITY_HEADERS
from tests.support.factories import make_key, unique_slug
from tests.support.retrain import add_candidate
from tests.support.ui_session import csrf_of, login_nonce, sign_in

PROTECTED = ("/ui/", "/ui/p/some-project/", "/ui/p/some-project/alerts", "/ui/p/some-project/webhooks",
             "/ui/p/some-project/models", "/ui/p/some-project/models/v1",
             "/ui/p/some-project/drift", "/ui/p/some-project/drift/2026-11-20T06:00:00Z",
             "/ui/p/some-project/drift/drift.prompt.mmd/2026-11-20T06:00:00Z/report.html")


def test_every_page_redirects_an_unauthenticated_visit_to_sign_in(client: TestClient) -> None:
    for path in PROTECTED:
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303, path
        assert unquote(r.headers["location"]) == f"/ui/login?next={path}", path


def test_an_ingestion_key_does_not_open_the_ui(client: TestClient, session: Session) -> None:
    key = make_key(session)
    session.commit()
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {key.key}"}).status_code == 200
    for path in ("/ui/", f"/ui/p/{key.project_slug}/models"):
        r = client.get(path, headers={"Authorization": f"Bearer {key.key}"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/ui/login"), path
    r = client.post(f"/ui/p/{key.project_slug}/models/v1/reject", data={"comment": "x"},
                    headers={"Authorization": f"Bearer {key.key}"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")


def test_sign_in_sets_a_hardened_session_cookie_and_returns_to_the_page(client: TestClient, operator: str) -> None:
    r = sign_in(client, operator, next_path="/ui/p/x/alerts?status=firing")
    assert r.status_code == 303 and r.headers["location"] == "/ui/p/x/alerts?status=firing"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("driftloop_session="))
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite", "path", "max-age"} <= flags
    assert "samesite=lax" in cookie.lower() and "path=/ui" in cookie.lower()
    assert "secure" not in flags  # local mode serves plain http on loopback
    page = client.get("/ui/")
    assert page.status_code == 200 and f"signed in as <strong>{operator}</strong>" in page.text


def test_cookies_are_secure_outside_local_mode(settings: Settings, connection: Connection,
                                               session_maker: sessionmaker[Session], operator: str) -> None:
    prod = settings.model_copy(update={"mode": "production", "secret_key": "a-real-secret-for-this-test-0123456789",
                                       "ui_cookie_samesite": "strict"})
    app = create_app(prod, engine=connection.engine)
    app.state.session_factory = session_maker
    with TestClient(app, base_url="https://testserver") as c:
        r = sign_in(c, operator)
        cookie = next(x for x in r.headers.get_list("set-cookie") if x.startswith("driftloop_session="))
        assert "secure" in cookie.lower() and "samesite=strict" in cookie.lower()
        assert c.get("/ui/").status_code == 200


def test_wrong_password_and_unknown_user_get_the_same_answer(client: TestClient, operator: str,
                                                             session: Session) -> None:
    a = sign_in(client, operator, password="wrong password here")
    b = sign_in(client, unique_slug("nobody"))
    assert a.status_code == b.status_code == 401
    assert "wrong username or password" in a.text and "wrong username or password" in b.text
    assert "driftloop_session" not in a.headers.get("set-cookie", "")
    assert client.get("/ui/", follow_redirects=False).status_code == 303
    # The failures were committed (they count towards the lockout) even though the sign-in failed.
    assert session.scalar(select(func.count()).select_from(LoginAttempt)
                          .where(LoginAttempt.username == operator, LoginAttempt.succeeded.is_(False))) == 1


def test_sign_in_is_locked_after_repeated_failures(client: TestClient, operator: str) -> None:
    for _ in range(3):
        assert sign_in(client, operator, password="wrong password here").status_code == 401
    locked = sign_in(client, operator)
    assert locked.status_code == 401 and "too many failed sign-ins" in locked.text
    assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_sign_in_form_needs_its_nonce(client: TestClient, operator: str) -> None:
    login_nonce(client)  # the cookie is set, but the form below does not carry the matching nonce
    r = client.post("/ui/login", data={"username": operator, "password": "x" * 12, "nonce": "forged"})
    assert r.status_code == 403 and "did not come from this site" in r.text
    client.cookies.clear()
    r = client.post("/ui/login", data={"username": operator, "password": "x" * 12, "nonce": "anything"})
    assert r.status_code == 403


def test_sign_in_never_redirects_off_site(client: TestClient, operator: str) -> None:
    for target in ("https://evil.example/", "//evil.example/ui/", "/v1/models", "/ui\\@evil"):
        client.cookies.clear()  # signed out again: a signed-in visit to the form skips it
        r = sign_in(client, operator, next_path=target)
        assert r.status_code == 303 and r.headers["location"] == "/ui/", target


def test_forged_posts_without_the_csrf_token_are_refused_and_change_nothing(ui: TestClient, session: Session,
                                                                              ) -> None:
    key = make_key(session)
    from monitor.projects.service import get_project

    pid = get_project(session, key.project_slug).id
    add_candidate(session, pid, passing=True)
    session.commit()
    page = ui.get(f"/ui/p/{key.project_slug}/models/v1")
    token = csrf_of(page.text)
    for data in ({"comment": "forged"}, {"comment": "forged", "csrf_token": ""},
                 {"comment": "forged", "csrf_token": token[:-2] + "xx"}):
        r = ui.post(f"/ui/p/{key.project_slug}/models/v1/reject", data=data, follow_redirects=False)
        assert r.status_code == 403 and "security token is missing or wrong" in r.text
    session.expire_all()
    assert 'id="version-status">candidate' in ui.get(f"/ui/p/{key.project_slug}/models/v1").text
    assert ui.post("/ui/logout", data={}, follow_redirects=False).status_code == 403
    assert ui.get("/ui/").status_code == 200  # still signed in: the forged logout did nothing


def test_logout_ends_the_session_server_side(ui: TestClient, session: Session, operator: str) -> None:
    stolen = ui.cookies.get("driftloop_session", path="/ui")
    assert stolen
    token = csrf_of(ui.get("/ui/").text)
    r = ui.post("/ui/logout", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    assert ui.get("/ui/", follow_redirects=False).status_code == 303
    # A copy of the cookie taken before the logout opens nothing either.
    ui.cookies.clear()
    ui.cookies.set("driftloop_session", stolen, path="/ui")
    assert ui.get("/ui/", follow_redirects=False).status_code == 303
    assert session.scalar(select(func.count()).select_from(OperatorSession).join(Operator).where(
        Operator.username == operator)) == 0


def test_a_tampered_or_foreign_cookie_is_not_a_session(ui: TestClient, settings: Settings, tmp_path: Path) -> None:
    good = ui.cookies.get("driftloop_session", path="/ui")
    assert good
    token, _, signature = good.partition(".")
    ui.cookies.clear()
    ui.cookies.set("driftloop_session", token + "x." + signature, path="/ui")
    assert ui.get("/ui/", follow_redirects=False).status_code == 303
    from itsdangerous import TimestampSigner

    foreign = TimestampSigner("another-deployment-secret", salt="driftloop.ui.session").sign(token).decode()
    ui.cookies.clear()
    ui.cookies.set("driftloop_session", foreign, path="/ui")
    assert ui.get("/ui/", follow_redirects=False).status_code == 303
    ui.cookies.clear()
    ui.cookies.set("driftloop_session", good, path="/ui")  # the untouched cookie still works
    assert ui.get("/ui/", follow_redirects=False).status_code == 200


def test_ui_pages_carry_security_headers(ui: TestClient) -> None:
    r = ui.get("/ui/")
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"
    assert ui.get("/ui/static/style.css").status_code == 200


def test_ui_responses_carry_the_security_headers_and_other_routes_do_not(client: TestClient, ui: TestClient) -> None:
    for response in (client.get("/ui/login"), ui.get("/ui/"), client.get("/ui/p/nope/", follow_redirects=False)):
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (response.url, name)
    api = client.get("/healthz")
    assert api.status_code == 200
    assert not set(SECURITY_HEADERS) & {k.title() for k in api.headers}, api.headers
