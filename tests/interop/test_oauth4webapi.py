"""oauth4webapi, an OpenID-certified client nobody here wrote, against a gateway on loopback.

The client discovers the token endpoint from the RFC 8414 metadata, authenticates with
``private_key_jwt``, binds its token with DPoP, retries once on ``use_dpop_nonce`` as RFC 9449
§8 says, and calls the API with the bound token. It reads every refusal as an RFC 6749 §5.2
error or it fails: the script is ``tests/contracts/oauth4webapi_client.mjs``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import ECKey, RSAKey

from connectors.simulator import SimulatorServer
from hub.app import create_app
from hub.db import unit_of_work
from hub.kafka.embedded import free_port
from hub.partners.service import register_partner, require_dpop
from tests.contracts import run_node
from tests.hubtest import make_hub

pytestmark = pytest.mark.integration

CLIENT_KEYS: dict[str, ECKey | RSAKey] = {}


def _client_key(alg: str) -> ECKey | RSAKey:
    """One key per algorithm for the whole module: RSA keys take a while to make."""
    if alg not in CLIENT_KEYS:
        CLIENT_KEYS[alg] = (
            ECKey.generate_key("P-256", auto_kid=True)
            if alg == "ES256"
            else RSAKey.generate_key(2048, auto_kid=True)
        )
    return CLIENT_KEYS[alg]


@dataclass
class Gateway:
    url: str
    client_ids: dict[str, str]

    def run(self, alg: str, **flags: Any) -> dict[str, Any]:
        """What the node client saw, with a client key and a DPoP key of ``alg``."""
        request = {
            "issuer": self.url,
            "client_id": self.client_ids[alg],
            "client_jwk": _client_key(alg).as_dict(private=True),
            "dpop_alg": alg,
            "scope": "referrals:read",
            "api_url": f"{self.url}/v1/referrals",
            **flags,
        }
        done = run_node("oauth4webapi_client.mjs", json.dumps(request), timeout=60)
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        assert "unexpected" not in result, result
        return result


def _gateway(database_url: str, tmp_path: Path, **settings: Any) -> Iterator[Gateway]:
    port = free_port()  # the issuer, and so the proofs' htu and the assertion audience, name it
    hub, _ = make_hub(database_url, tmp_path, http_port=port, **settings)
    client_ids = {}
    with unit_of_work(hub.session_factory) as session:
        for alg in ("ES256", "PS256"):
            partner = f"ude-{alg.lower()}"
            creds = register_partner(
                session,
                partner_id=partner,
                name=f"UDE {alg}",
                kind="university",
                scopes=["referrals:read"],
                auth_method="private_key_jwt",
                jwks={"keys": [_client_key(alg).as_dict(private=False)]},
            )
            require_dpop(session, partner_id=partner, required=True)
            client_ids[alg] = creds["client_id"]
    server = SimulatorServer(create_app(hub, kafka_check=lambda: True), port=port).start()
    try:
        yield Gateway(server.url, client_ids)
    finally:
        server.stop()
        hub.engine.dispose()


@pytest.fixture
def gateway(database_url: str, tmp_path: Path) -> Iterator[Gateway]:
    yield from _gateway(database_url, tmp_path)


@pytest.fixture
def gateway_with_nonces(database_url: str, tmp_path: Path) -> Iterator[Gateway]:
    yield from _gateway(
        database_url, tmp_path, dpop_nonce_required=True, dpop_nonce_secret="n" * 32
    )


@pytest.mark.parametrize("alg", ["ES256", "PS256"])
def test_a_dpop_bound_token_after_the_servers_nonce_and_an_api_call(
    gateway_with_nonces: Gateway, alg: str
) -> None:
    result = gateway_with_nonces.run(alg)
    assert "token_error" not in result, result
    assert result["nonce_retries"] == 1  # the first request was refused with use_dpop_nonce
    assert result["token_type"].lower() == "dpop"
    assert result["api_status"] == 200, result
    assert result["api_body"]["items"] == []


def test_without_a_nonce_requirement_the_first_request_gets_the_token(gateway: Gateway) -> None:
    result = gateway.run("ES256")
    assert result["nonce_retries"] == 0
    assert result["token_type"].lower() == "dpop" and result["api_status"] == 200, result


def test_a_scope_beyond_the_registration_reads_as_invalid_scope(gateway: Gateway) -> None:
    result = gateway.run("ES256", scope="status:write")
    assert result["token_error"] == {
        "kind": "ResponseBodyError",
        "status": 400,
        "error": "invalid_scope",
        "error_description": "scope not allowed for this client: status:write",
    }


def test_a_stale_proof_reads_as_invalid_dpop_proof(gateway: Gateway) -> None:
    result = gateway.run("ES256", stale_proof=True)
    error = result["token_error"]
    assert error["kind"] == "ResponseBodyError", result
    assert error["status"] == 400 and error["error"] == "invalid_dpop_proof"
    assert error["error_description"]  # says what is wrong with the proof
