"""Logging in to a running console with httpx (no browser)."""

from __future__ import annotations

import re

import httpx

from tests.steward.seed import PASSWORD

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def login(base: str, username: str, password: str = PASSWORD) -> tuple[httpx.Client, str]:
    """A client holding a session cookie, and the session's CSRF token."""
    client = httpx.Client(base_url=base, follow_redirects=False, timeout=30)
    form = client.get("/steward/login")
    response = client.post(
        "/steward/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(form.text)},
    )
    assert response.status_code == 303, response.text
    page = client.get("/steward/review")
    assert page.status_code == 200
    return client, csrf_of(page.text)
