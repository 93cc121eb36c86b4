"""A partner's DPoP client, as docs/partners.md shows it, against a gateway over real HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from joserfc.jwk import ECKey

from connectors.oauth_client import dpop_client
from connectors.simulator import SimulatorServer
from hub.app import create_app
from hub.db import unit_of_work
from hub.kafka.embedded import free_port
from hub.partners.service import register_partner
from tests.hubtest import make_hub

pytestmark = pytest.mark.integration


def test_dpop_partner_over_http_with_nonces(tmp_path: Path) -> None:
    port = free_port()  # the issuer, and so every htu, names the real port
    hub, _ = make_hub(
        f"sqlite:///{tmp_path / 'hub.db'}", tmp_path, http_port=port, dpop_nonce_required=True
    )
    key = ECKey.generate_key("P-256", auto_kid=True)
    with unit_of_work(hub.session_factory) as session:
        creds = register_partner(
            session,
            partner_id="ude-duisburg",
            name="UDE Campus Duisburg",
            kind="university",
            scopes=["referrals:read"],
            auth_method="private_key_jwt",
            jwks={"keys": [key.as_dict(private=False)]},
            dpop_required=True,
        )
    gateway = SimulatorServer(create_app(hub, kafka_check=lambda: True), port=port).start()
    try:
        with dpop_client(
            f"{gateway.url}/oauth/token", creds["client_id"], private_key=key, base_url=gateway.url
        ) as client:
            for _ in range(2):
                r = client.get("/v1/referrals", params={"limit": 5})
                assert r.status_code == 200, r.text
            token = client.auth.access_token  # type: ignore[attr-defined]
        # The token alone, as a thief would have it, is refused either way.
        for scheme in ("Bearer", "DPoP"):
            r = httpx.get(
                f"{gateway.url}/v1/referrals", headers={"Authorization": f"{scheme} {token}"}
            )
            assert r.status_code == 401
            assert r.headers["www-authenticate"].startswith("DPoP error=")
    finally:
        gateway.stop()
        hub.engine.dispose()
