"""CORS stays closed, docs are off in production, and the hub calls only allowed URLs."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey

from connectors.egress import PRODUCTION
from hub.db import unit_of_work
from hub.errors import InvalidInput
from hub.partners.models import Partner
from hub.partners.service import connect_partner
from hub.settings import ExternalIssuer
from tests.hubtest import STUDENT_REFERRAL, Partners, api_client, make_hub
from tests.oidc_provider import OidcProvider, User
from tests.staffweb import PASSWORD, csrf_of, log_in, staff_client

ORIGIN = "https://evil.example"
CORS_PATHS = [
    "/v1/referrals",
    "/v1/inbox",
    "/v1/people/p-1/timeline",
    "/oauth/token",
    "/.well-known/jwks.json",
    "/.well-known/oauth-authorization-server",
    "/health",
    "/staff/login",
]


def in_production(hub: Any, **changes: Any) -> Any:
    """The hub with production-profile settings (the other production checks skipped)."""
    hub.settings = hub.settings.model_copy(update={"profile": "production", **changes})
    return hub


def access_control(headers: Any) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower().startswith("access-control-")}


# ---------------------------------------------------------------------- CORS


@pytest.mark.parametrize("path", CORS_PATHS)
def test_preflight_is_not_answered_with_cors_headers(client: TestClient, path: str) -> None:
    r = client.options(
        path,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert access_control(r.headers) == {}
    assert r.status_code >= 400, "no successful preflight"


def test_no_cors_headers_on_real_answers(client: TestClient, partners: Partners) -> None:
    headers = {**partners.headers(client, "ude"), "Origin": ORIGIN}
    answers = [
        client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=headers),
        client.get("/v1/referrals", headers=headers),
        client.get("/v1/referrals", headers={"Origin": ORIGIN}),  # 401
        client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=headers),
        client.get("/.well-known/jwks.json", headers={"Origin": "null"}),
    ]
    assert [r.status_code for r in answers] == [202, 200, 401, 401, 200]
    assert all(access_control(r.headers) == {} for r in answers)


# ---------------------------------------------------------------------- docs

DOCS = ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect")


def test_docs_in_development(client: TestClient) -> None:
    assert [client.get(path).status_code for path in DOCS] == [200] * len(DOCS)


def test_no_docs_in_production(hub_and_partners: Any) -> None:
    hub = in_production(hub_and_partners[0])
    with api_client(hub) as client:
        assert [client.get(path).status_code for path in DOCS] == [404] * len(DOCS)
        assert "swagger" not in client.get("/docs").text.lower()
        assert client.get("/health").status_code == 200  # the rest still answers


# ---------------------------------------------------------------------- SSRF: where it is wired


def test_connect_partner_checks_urls_against_the_profile(hub_and_partners: Any) -> None:
    hub = hub_and_partners[0]
    public = {
        "mode": "push",
        "endpoint_url": "https://93.184.215.14/hook",
        "token_endpoint": "https://93.184.215.14/token",
        "client_id": "talent-hub",
        "credential_ref": "env:UDE_CLIENT_SECRET",
        "signing_secret_ref": "env:UDE_SIGNING_SECRET",
    }
    sim = {
        **public,
        "endpoint_url": "http://127.0.0.1:9/webhook",
        "token_endpoint": "http://127.0.0.1:9/token",
    }
    with unit_of_work(hub.session_factory) as session:
        connect_partner(session, partner_id="ude", config=sim)  # development: simulators
        for field, url in (
            ("endpoint_url", "https://127.0.0.1/webhook"),
            ("endpoint_url", "http://93.184.215.14/webhook"),
            ("token_endpoint", "https://169.254.169.254/token"),
            ("token_endpoint", "https://[::ffff:10.0.0.1]/token"),
        ):
            config = {**public, field: url}
            with pytest.raises(InvalidInput) as refused:
                connect_partner(session, partner_id="ude", config=config, egress=PRODUCTION)
            problem = refused.value.to_problem()
            assert problem["status"] == 422 and problem["field"] == field, problem
        connect_partner(session, partner_id="ude", config=public, egress=PRODUCTION)
    with hub.session_factory() as session:
        partner = session.get(Partner, "ude")
        assert (
            partner is not None
            and partner.connector["endpoint_url"] == "https://93.184.215.14/hook"
        )


def test_staff_ui_refuses_urls_with_credentials(hub_and_partners: Any) -> None:
    from hub.web.accounts import add_staff

    hub = hub_and_partners[0]
    with unit_of_work(hub.session_factory) as session:
        add_staff(session, email="admin@duisburg.de", role="admin", purposes=[], password=PASSWORD)
    with staff_client(hub) as browser:
        assert log_in(browser, "admin@duisburg.de").status_code == 303
        token = csrf_of(browser.get("/staff/deliveries").text)
        r = browser.post(
            "/staff/partners/ude/mode",
            data={
                "csrf_token": token,
                "mode": "push",
                "endpoint_url": "https://admin:hunter2@ude.example/hook",
            },
        )
    assert r.status_code == 422 and "endpoint_url" in r.text


@pytest.fixture
def idp() -> Iterator[OidcProvider]:
    with OidcProvider(
        client_id="talent-hub",
        client_secret="an oidc client secret",
        redirect_uris=["https://testserver/staff/login/oidc/callback"],
        user=User(email="a@stadt-duisburg.de", sub="s-1"),
    ) as provider:
        yield provider


def foreign_token(issuer: str) -> str:
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": "urn:talenthub:api:v1",
        "azp": "ude",
        "scope": "referrals:read",
        "iat": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
    }
    key = ECKey.generate_key("P-256")
    return jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": "unknown-kid"}, claims, key)


@pytest.mark.parametrize(
    ("profile", "detail"),
    [("development", "token key id unknown"), ("production", "token issuer keys unavailable")],
)
def test_external_jwks_is_fetched_only_where_allowed(
    database_url: str, tmp_path: Path, idp: OidcProvider, profile: str, detail: str
) -> None:
    # The test provider serves its JWKS over plain http on loopback.
    issuer = ExternalIssuer(issuer="https://idp.example", jwks_url=f"{idp.url}/jwks")
    hub, _ = make_hub(database_url, tmp_path, external_issuers=[issuer])
    if profile == "production":
        in_production(hub)
    with api_client(hub) as client:
        r = client.get(
            "/v1/referrals", headers={"Authorization": f"Bearer {foreign_token(issuer.issuer)}"}
        )
    hub.engine.dispose()
    assert r.status_code == 401 and r.json()["detail"] == detail


@pytest.mark.parametrize(("profile", "status"), [("development", 303), ("production", 503)])
def test_oidc_provider_is_called_only_where_allowed(
    database_url: str, tmp_path: Path, idp: OidcProvider, profile: str, status: int
) -> None:
    hub, _ = make_hub(
        database_url, tmp_path, staff_oidc_issuer=idp.url, staff_oidc_client_id="talent-hub"
    )
    if profile == "production":
        in_production(hub)
    with TestClient(api_client(hub).app, base_url="https://testserver") as browser:
        r = browser.get("/staff/login/oidc", follow_redirects=False)
    hub.engine.dispose()
    assert r.status_code == status, r.text
