"""Staff login through the city's OpenID Connect provider (a real one on loopback, for tests)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi.testclient import TestClient
from sqlalchemy import select

from hub.app import create_app
from hub.audit.models import AuditRecord
from hub.db import unit_of_work
from hub.web.accounts import add_staff
from hub.web.models import StaffAccount
from hub.web.oidc import Flow, seal
from hub.web.pages import SESSION_COOKIE
from tests.hubtest import make_hub
from tests.oidc_provider import OidcProvider, User, new_key, s256

CLIENT_ID = "talent-hub"
CLIENT_SECRET = "a test client secret"
CALLBACK = "https://testserver/staff/login/oidc/callback"
EMAIL = "a.yilmaz@stadt-duisburg.de"


@pytest.fixture
def provider() -> Iterator[OidcProvider]:
    with OidcProvider(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uris=[CALLBACK],
        user=User(email="A.Yilmaz@stadt-duisburg.de", sub="city-4711"),
    ) as p:
        yield p


@pytest.fixture
def hub(database_url: str, tmp_path: Path, provider: OidcProvider) -> Iterator[Any]:
    hub, _ = make_hub(
        database_url,
        tmp_path,
        staff_oidc_issuer=provider.url,
        staff_oidc_client_id=CLIENT_ID,
        staff_oidc_client_secret=CLIENT_SECRET,
    )
    with unit_of_work(hub.session_factory) as session:
        # Accounts for the city login need no password of their own.
        add_staff(session, email=EMAIL, role="caseworker", purposes=["residence"], password=None)
    yield hub
    hub.engine.dispose()


@pytest.fixture
def browser(hub: Any) -> Iterator[TestClient]:
    with TestClient(create_app(hub, kafka_check=lambda: True), base_url="https://testserver") as c:
        yield c


def start(browser: TestClient) -> str:
    """Begin the login; returns the provider's authorization URL."""
    r = browser.get("/staff/login/oidc", follow_redirects=False)
    assert r.status_code == 303, r.text
    return str(r.headers["location"])


def authorize(url: str) -> str:
    """The provider approves; returns our callback's path and query."""
    r = httpx.get(url, follow_redirects=False, timeout=10)
    assert r.status_code == 302, r.text
    target = urlsplit(r.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == CALLBACK
    return f"{target.path}?{target.query}"


def log_in(browser: TestClient) -> httpx.Response:
    return browser.get(authorize(start(browser)), follow_redirects=False)


def actions(hub: Any) -> list[tuple[str, str, dict[str, Any] | None]]:
    with unit_of_work(hub.session_factory) as session:
        rows = session.scalars(select(AuditRecord).order_by(AuditRecord.seq))
        return [(r.action, r.actor, r.details) for r in rows if r.action.startswith("staff.")]


def refusals(hub: Any) -> list[str]:
    """The reasons of the refused logins in the audit trail, oldest first."""
    return [d["reason"] for a, _, d in actions(hub) if a == "staff.login_refused" and d]


def assert_refused(r: httpx.Response, browser: TestClient, status: int = 401) -> None:
    assert r.status_code == status, r.text
    assert 'role="alert"' in r.text
    assert SESSION_COOKIE not in r.headers.get("set-cookie", "")
    assert browser.get("/staff/search", follow_redirects=False).status_code == 303


def test_login_with_the_city_account(browser: TestClient, hub: Any, provider: OidcProvider) -> None:
    url = start(browser)
    assert url.startswith(f"{provider.url}/authorize?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert query["response_type"] == "code"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == CALLBACK
    assert query["scope"] == "openid email"
    assert query["code_challenge_method"] == "S256"
    assert query["state"] and query["nonce"]

    r = browser.get(authorize(url), follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/staff/"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=strict" in cookie
    assert browser.get("/staff/search").status_code == 200

    # The token request proved the PKCE verifier behind the challenge, and the client secret.
    (token_request,) = provider.token_requests
    assert s256(token_request["code_verifier"]) == query["code_challenge"]
    assert token_request["auth_method"] == "client_secret_basic"
    assert ("staff.login", EMAIL, {"method": "oidc"}) in actions(hub)


def test_login_keeps_a_safe_next_page(browser: TestClient) -> None:
    page = browser.get("/staff/login?next=/staff/search%3Fq%3Dx")
    assert 'href="/staff/login/oidc?next=/staff/search%3Fq%3Dx"' in page.text
    r = browser.get("/staff/login/oidc?next=/staff/search%3Fq%3Dx", follow_redirects=False)
    r = browser.get(authorize(r.headers["location"]), follow_redirects=False)
    assert r.headers["location"] == "/staff/search?q=x"


def test_unknown_or_inactive_account_is_refused(
    browser: TestClient, hub: Any, provider: OidcProvider
) -> None:
    provider.user = User(email="someone.else@stadt-duisburg.de", sub="city-1")
    r = log_in(browser)
    assert_refused(r, browser)
    assert "keinen aktiven Zugang" in r.text
    assert (
        "staff.login_refused",
        "anonymous",
        {"method": "oidc", "reason": "unknown_account"},
    ) in actions(hub)

    provider.user = User(email=EMAIL, sub="city-4711")
    with unit_of_work(hub.session_factory) as session:
        account = session.scalars(select(StaffAccount).where(StaffAccount.email == EMAIL)).one()
        account.active = False
    assert_refused(log_in(browser), browser)


def test_tampered_state_is_refused(browser: TestClient, hub: Any) -> None:
    callback = authorize(start(browser))
    path, _, query = callback.partition("?")
    params = {k: v[0] for k, v in parse_qs(query).items()}
    params["state"] = params["state"][:-2] + "xy"
    r = browser.get(path, params=params, follow_redirects=False)
    assert_refused(r, browser, status=400)
    assert "abgelaufen oder ungültig" in r.text
    details = [d for a, _, d in actions(hub) if a == "staff.login_refused"]
    assert details == [{"method": "oidc", "reason": "state_mismatch"}]


def test_a_state_cookie_sealed_elsewhere_is_refused(browser: TestClient) -> None:
    callback = authorize(start(browser))
    state = parse_qs(urlsplit(callback).query)["state"][0]
    flow = Flow(state, "n", "v" * 43, CALLBACK, "", time.time() + 60)
    browser.cookies.clear()
    for forged in (seal(AESGCM.generate_key(bit_length=256), flow), "bm90IHNlYWxlZA"):
        r = browser.get(callback, headers={"Cookie": f"hub_oidc={forged}"}, follow_redirects=False)
        assert_refused(r, browser, status=400)


def test_callback_without_a_started_login_is_refused(browser: TestClient) -> None:
    r = browser.get("/staff/login/oidc/callback?code=x&state=y", follow_redirects=False)
    assert_refused(r, browser, status=400)


def test_a_token_signed_by_another_key_is_refused(
    browser: TestClient, hub: Any, provider: OidcProvider
) -> None:
    provider.signing_key = new_key(kid=provider.key.kid)  # same kid, a key not in the JWKS
    assert_refused(log_in(browser), browser)
    provider.signing_key = new_key()  # a kid the JWKS does not know
    assert_refused(log_in(browser), browser)
    assert refusals(hub) == ["id_token_invalid", "id_token_key_unknown"]


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"nonce": "not the nonce we sent"}, "id_token_invalid"),
        ({"aud": "another-client"}, "id_token_invalid"),
        ({"aud": [CLIENT_ID, "another-client"]}, "id_token_audience_mismatch"),
        ({"azp": "another-client"}, "id_token_azp_mismatch"),
        ({"iss": "https://login.example.org"}, "id_token_invalid"),
        ({"exp": 1_700_000_000}, "id_token_invalid"),
        ({"iat": 4_000_000_000}, "id_token_invalid"),
        ({"nonce": None}, "id_token_invalid"),
        ({"email_verified": False}, "email_not_verified"),
    ],
    ids=["nonce", "aud", "extra-aud", "azp", "iss", "exp", "iat", "no-nonce", "unverified"],
)
def test_an_invalid_id_token_is_refused(
    browser: TestClient, hub: Any, provider: OidcProvider, claims: dict[str, Any], reason: str
) -> None:
    provider.claims = claims
    assert_refused(log_in(browser), browser)
    assert refusals(hub) == [reason]


def test_provider_refusal_is_shown(browser: TestClient, hub: Any, provider: OidcProvider) -> None:
    provider.deny = True
    r = log_in(browser)
    assert_refused(r, browser)
    assert "nicht bestätigt" in r.text
    assert refusals(hub) == ["provider_error"]


def test_a_code_works_once(browser: TestClient, hub: Any) -> None:
    callback = authorize(start(browser))
    assert browser.get(callback, follow_redirects=False).status_code == 303
    browser.cookies.clear()
    # The state cookie is gone after use; even with a new one the provider refuses the code.
    url = start(browser)
    state = parse_qs(urlsplit(url).query)["state"][0]
    path, _, query = callback.partition("?")
    params = {k: v[0] for k, v in parse_qs(query).items()} | {"state": state}
    assert_refused(browser.get(path, params=params, follow_redirects=False), browser)
    assert refusals(hub) == ["token_exchange_failed"]


def test_provider_down_is_a_clear_page_not_a_500(
    browser: TestClient, provider: OidcProvider
) -> None:
    provider.__exit__()
    r = browser.get("/staff/login/oidc", follow_redirects=False)
    assert r.status_code == 503
    assert "nicht erreichbar" in r.text


def test_the_button_shows_when_configured(browser: TestClient) -> None:
    page = browser.get("/staff/login")
    assert "Mit dem Stadt-Konto anmelden" in page.text
    assert 'href="/staff/login/oidc"' in page.text
    browser.get("/staff/lang/en")
    assert "Log in with the city account" in browser.get("/staff/login").text


def test_not_configured_means_no_button_and_404(database_url: str, tmp_path: Path) -> None:
    hub, _ = make_hub(database_url, tmp_path)
    try:
        with TestClient(
            create_app(hub, kafka_check=lambda: True), base_url="https://testserver"
        ) as c:
            assert "Stadt-Konto" not in c.get("/staff/login").text
            r = c.get("/staff/login/oidc", follow_redirects=False)
            assert r.status_code == 404
            assert "text/html" in r.headers["content-type"]
            assert c.get("/staff/login/oidc/callback?code=x&state=y").status_code == 404
    finally:
        hub.engine.dispose()
