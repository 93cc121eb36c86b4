"""A partner's code, as docs/partners.md shows it, against a running gateway over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from joserfc.jwk import ECKey

from connectors.oauth_client import hub_client
from connectors.simulator import SimulatorServer
from hub.app import create_app
from hub.db import unit_of_work
from hub.kafka.embedded import free_port
from hub.partners.service import register_partner
from tests.hubtest import STUDENT_REFERRAL, make_hub

pytestmark = pytest.mark.integration


def test_partner_clients_with_secret_and_with_private_key(tmp_path: Path) -> None:
    port = free_port()  # the issuer (and so the assertion audience) names the real port
    hub, partners = make_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path, http_port=port)
    key = ECKey.generate_key("P-256", auto_kid=True)
    with unit_of_work(hub.session_factory) as session:
        jwt_partner = register_partner(
            session,
            partner_id="ude-duisburg",
            name="UDE Campus Duisburg",
            kind="university",
            scopes=["referrals:write", "referrals:read"],
            auth_method="private_key_jwt",
            jwks={"keys": [key.as_dict(private=False)]},
        )
    gateway = SimulatorServer(create_app(hub, kafka_check=lambda: True), port=port).start()
    try:
        token_endpoint = f"{gateway.url}/oauth/token"
        ude = partners.creds["ude"]
        with hub_client(
            token_endpoint,
            ude["client_id"],
            client_secret=ude["client_secret"],
            base_url=gateway.url,
        ) as client:
            client.fetch_token()
            r = client.post("/v1/referrals", json=STUDENT_REFERRAL)
            assert r.status_code == 202, r.text
        with hub_client(
            token_endpoint, jwt_partner["client_id"], private_key=key, base_url=gateway.url
        ) as client:
            for _ in range(2):  # two token requests: each assertion carries its own jti
                client.fetch_token()
            r = client.get("/v1/referrals")
            assert r.status_code == 200, r.text
            assert json.loads(r.text)["items"] == []
    finally:
        gateway.stop()
        hub.engine.dispose()
