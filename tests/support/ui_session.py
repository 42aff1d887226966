"""Signing in to the UI with a TestClient: the sign-in form's nonce, the POST, a page's CSRF token."""

from __future__ import annotations

import re

import httpx
from fastapi.testclient import TestClient

from tests.support.ui_seed import PASSWORD


def login_nonce(client: TestClient) -> str:
    page = client.get("/ui/login")
    assert page.status_code == 200
    found = re.search(r'name="nonce" value="([^"]+)"', page.text)
    assert found, "the sign-in form carries a nonce"
    return found.group(1)


def sign_in(client: TestClient, username: str, password: str = PASSWORD, next_path: str = "/ui/") -> httpx.Response:
    return client.post("/ui/login", data={"username": username, "password": password, "nonce": login_nonce(client),
                                          "next": next_path}, follow_redirects=False)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page carries a CSRF token"
    return found.group(1)
