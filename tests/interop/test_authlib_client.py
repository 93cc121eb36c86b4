"""authlib's OAuth 2.0 client, used as any partner would use it, against a gateway on loopback.

Nothing of the hub's own client code is involved: if authlib gets a token, calls the API
with it, and reads each refusal into an ``OAuthError`` with the right ``error`` and
``error_description``, the token endpoint speaks RFC 6749 as a library expects it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import ECKey

from connectors.simulator import SimulatorServer
from hub.app import create_app
from hub.db import unit_of_work
from hub.kafka.embedded import free_port
from hub.partners.service import register_partner
from tests.hubtest import Partners, make_hub

pytestmark = pytest.mark.integration


@dataclass
class Gateway:
    url: str
    partners: Partners
    jwt_client_id: str
    key: ECKey

    @property
    def token_endpoint(self) -> str:
        return f"{self.url}/oauth/token"

    def basic_client(self, partner: str = "ude", secret: str | None = None) -> OAuth2Client:
        creds = self.partners.creds[partner]
        return OAuth2Client(
            creds["client_id"],
            secret or creds["client_secret"],
            token_endpoint_auth_method="client_secret_basic",
        )


@pytest.fixture
def gateway(database_url: str, tmp_path: Path) -> Iterator[Gateway]:
    port = free_port()  # the issuer, and so the assertion audience, names the real port
    hub, partners = make_hub(database_url, tmp_path, http_port=port)
    key = ECKey.generate_key("P-256", auto_kid=True)
    with unit_of_work(hub.session_factory) as session:
        office = register_partner(
            session,
            partner_id="ude-office",
            name="UDE International Office",
            kind="university",
            scopes=["referrals:read"],
        )
        creds = register_partner(
            session,
            partner_id="ude-lab",
            name="UDE Labor",
            kind="university",
            scopes=["referrals:read"],
            auth_method="private_key_jwt",
            jwks={"keys": [key.as_dict(private=False)]},
        )
    partners.creds["ude-office"] = office
    server = SimulatorServer(create_app(hub, kafka_check=lambda: True), port=port).start()
    try:
        yield Gateway(server.url, partners, creds["client_id"], key)
    finally:
        server.stop()
        hub.engine.dispose()


def test_client_secret_basic_token_and_an_api_call(gateway: Gateway) -> None:
    with gateway.basic_client() as client:
        token = client.fetch_token(
            gateway.token_endpoint, grant_type="client_credentials", scope="referrals:read"
        )
        assert token["token_type"] == "Bearer" and token["scope"] == "referrals:read"
        r = client.get(f"{gateway.url}/v1/referrals")
    assert r.status_code == 200, r.text
    assert r.json()["items"] == []


def test_private_key_jwt_token_and_an_api_call(gateway: Gateway) -> None:
    # authlib signs RS256 assertions valid for an hour unless told otherwise; the hub takes
    # ES256 and at most 60 seconds.
    auth = PrivateKeyJWT(gateway.token_endpoint, alg="ES256", claims={"exp": int(time.time()) + 30})
    with OAuth2Client(
        gateway.jwt_client_id, gateway.key, token_endpoint_auth_method=auth
    ) as client:
        client.fetch_token(gateway.token_endpoint, grant_type="client_credentials")
        r = client.get(f"{gateway.url}/v1/referrals")
    assert r.status_code == 200, r.text


def test_a_scope_beyond_the_registration_is_an_oauth_error_in_authlib(gateway: Gateway) -> None:
    with gateway.basic_client("ude-office") as client, pytest.raises(OAuthError) as info:
        client.fetch_token(
            gateway.token_endpoint, grant_type="client_credentials", scope="status:write"
        )
    assert info.value.error == "invalid_scope"
    assert info.value.description == "scope not allowed for this client: status:write"


def test_a_wrong_secret_is_an_oauth_error_in_authlib(gateway: Gateway) -> None:
    client = gateway.basic_client("ude", "not-the-secret")
    with client, pytest.raises(OAuthError) as info:
        client.fetch_token(gateway.token_endpoint, grant_type="client_credentials")
    assert info.value.error == "invalid_client"
    assert info.value.description == "invalid client credentials"
