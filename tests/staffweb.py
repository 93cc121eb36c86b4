"""Helpers for tests of the staff UI over HTTP."""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi.testclient import TestClient

from hub.app import create_app

PASSWORD = "a long staff password"


def staff_client(hub: Any) -> TestClient:
    """An in-process browser; https, since the session cookie is Secure."""
    return TestClient(create_app(hub, kafka_check=lambda: True), base_url="https://testserver")


def csrf_of(page_html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', page_html)
    assert found, page_html
    return found.group(1)


def log_in(client: TestClient, email: str, password: str = PASSWORD) -> httpx.Response:
    """Submit the login form as a browser would (with the login page's CSRF token)."""
    page = client.get("/staff/login")
    return client.post(
        "/staff/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
