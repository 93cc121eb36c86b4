"""A trusted external IdP (the city's) speaks only for the partners it is listed for, and its
tokens grant no more than the partner is registered for at the hub."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey

from hub.auth.tokens import build_token_validator
from hub.bootstrap import Hub
from hub.db import unit_of_work
from hub.partners.service import register_partner, revoke_client
from hub.settings import ExternalIssuer
from tests.hubtest import api_client, make_hub

IDP = "https://idp.duisburg.test"
IDP_JWKS = f"{IDP}/jwks"
IDP_KEY = ECKey.generate_key("P-256", {"alg": "ES256", "use": "sig"}, auto_kid=True)
PERSON = "p-4711"


def idp_token(partner: str, scope: str) -> str:
    """An access token the IdP issued naming ``partner`` (its ``azp``)."""
    now = int(time.time())
    claims = {
        "iss": IDP,
        "aud": "urn:talenthub:api:v1",
        "azp": partner,
        "sub": f"svc-{partner}",
        "scope": scope,
        "iat": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
    }
    head = {"alg": "ES256", "typ": "at+jwt", "kid": IDP_KEY.kid}
    return jwt.encode(head, claims, IDP_KEY, ["ES256"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def hub_with_idp(database_url: str, tmp_path: Path) -> Iterator[tuple[Hub, TestClient, str]]:
    """The gateway trusting the IdP for ude and ude-lab; ude-lab holds no consent scopes."""
    idp = ExternalIssuer(
        issuer=IDP, jwks_url=IDP_JWKS, algorithms=["ES256"], partners=["ude", "ude-lab"]
    )
    hub, _ = make_hub(database_url, tmp_path, external_issuers=[idp])
    with unit_of_work(hub.session_factory) as session:
        lab = register_partner(
            session,
            partner_id="ude-lab",
            name="UDE Labor",
            kind="university",
            scopes=["referrals:read"],
        )
    with api_client(hub) as client:
        app: Any = client.app
        jwks = httpx.Response(200, json={"keys": [IDP_KEY.as_dict(private=False)]})
        app.state.token_validator = build_token_validator(
            settings=hub.settings,
            session_factory=hub.session_factory,
            signing_keys=app.state.signing_keys,
            http=httpx.Client(transport=httpx.MockTransport(lambda request: jwks)),
        )
        yield hub, client, lab["client_id"]
    hub.engine.dispose()


def test_idp_token_cannot_reach_past_the_partners_registration(
    hub_with_idp: tuple[Hub, TestClient, str],
) -> None:
    _, client, _ = hub_with_idp
    token = idp_token("ude-lab", "referrals:read consent:read")
    r = client.get(f"/v1/people/{PERSON}/consents", headers=bearer(token))
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "insufficient_scope"
    assert client.get("/v1/referrals", headers=bearer(token)).status_code == 200


def test_idp_token_naming_a_partner_it_is_not_listed_for_is_refused(
    hub_with_idp: tuple[Hub, TestClient, str],
) -> None:
    _, client, _ = hub_with_idp
    r = client.get("/v1/inbox", headers=bearer(idp_token("amt", "inbox:read")))
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_token"
    assert r.json()["detail"] == "token issuer may not speak for the partner it names"
    assert r.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    # The control: the same IdP speaking for a partner it is listed for.
    ok = client.get("/v1/inbox", headers=bearer(idp_token("ude", "inbox:read")))
    assert ok.status_code == 200, ok.text


def test_revoking_the_partners_client_takes_the_scopes_from_idp_tokens(
    hub_with_idp: tuple[Hub, TestClient, str],
) -> None:
    hub, client, lab_client = hub_with_idp
    token = idp_token("ude-lab", "referrals:read")
    assert client.get("/v1/referrals", headers=bearer(token)).status_code == 200
    with unit_of_work(hub.session_factory) as session:
        revoke_client(session, partner_id="ude-lab", client_id=lab_client)
    r = client.get("/v1/referrals", headers=bearer(token))
    assert r.status_code == 403, r.text
