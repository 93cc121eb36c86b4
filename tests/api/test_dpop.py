"""DPoP through the gateway: bound tokens from the token endpoint, proofs at the API, nonces."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey

from connectors.oauth_client import DPoPAuth
from hub.app import create_app
from hub.auth.dpop import access_token_hash
from hub.bootstrap import Hub
from hub.cli import main
from hub.db import unit_of_work
from hub.partners.models import Partner
from hub.partners.service import require_dpop
from tests.hubtest import make_hub

ISSUER = "https://hub.test"
TOKEN_URL = f"{ISSUER}/oauth/token"
API_URL = f"{ISSUER}/v1/referrals"
KEY = ECKey.generate_key("P-256")


class World:
    """A migrated hub with the demo partners; ude must use DPoP."""

    def __init__(self, database_url: str, tmp_path: Path, **settings: Any) -> None:
        self.hub, self.partners = make_hub(database_url, tmp_path, issuer=ISSUER, **settings)
        with unit_of_work(self.hub.session_factory) as session:
            require_dpop(session, partner_id="ude", required=True)

    def basic(self, partner: str = "ude") -> tuple[str, str]:
        c = self.partners.creds[partner]
        return c["client_id"], c["client_secret"]


@pytest.fixture
def world(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[World]:
    marker = request.node.get_closest_marker("hub_settings")
    w = World(database_url, tmp_path, **(marker.kwargs if marker else {}))
    yield w
    w.hub.engine.dispose()


@pytest.fixture
def http(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(world.hub, kafka_check=lambda: True), base_url=ISSUER) as c:
        yield c


def proof(
    method: str = "GET",
    url: str = API_URL,
    *,
    key: ECKey = KEY,
    token: str | None = None,
    **claims: Any,
) -> str:
    body: dict[str, Any] = {
        "jti": str(uuid.uuid4()),
        "htm": method,
        "htu": url,
        "iat": int(time.time()),
    }
    if token is not None:
        body["ath"] = access_token_hash(token)
    body.update(claims)
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=False)}
    return jwt.encode(header, {k: v for k, v in body.items() if v is not None}, key, ["ES256"])


def token_response(
    http: TestClient, world: World, partner: str = "ude", dpop: str | None = None
) -> httpx.Response:
    headers = {"DPoP": dpop} if dpop else {}
    form = {"grant_type": "client_credentials"}
    return http.post("/oauth/token", data=form, auth=world.basic(partner), headers=headers)


def bound_token(http: TestClient, world: World, key: ECKey = KEY) -> str:
    r = token_response(http, world, dpop=proof("POST", TOKEN_URL, key=key))
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "DPoP"
    return str(r.json()["access_token"])


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def call(http: TestClient, token: str, dpop: str | None, scheme: str = "DPoP") -> httpx.Response:
    headers = {"Authorization": f"{scheme} {token}"}
    if dpop is not None:
        headers["DPoP"] = dpop
    return http.get("/v1/referrals", headers=headers)


def assert_refused(r: httpx.Response, error: str, detail: str) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith(f'DPoP error="{error}"'), challenge
    assert 'algs="ES256 PS256 EdDSA"' in challenge
    assert detail in r.json()["detail"]
    assert r.json()["error"] == error


# --- the token endpoint ---------------------------------------------------------------------


def test_dpop_partner_gets_a_token_bound_to_its_key(http: TestClient, world: World) -> None:
    r = token_response(http, world, dpop=proof("POST", TOKEN_URL))
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "DPoP"
    assert claims_of(r.json()["access_token"])["cnf"] == {"jkt": KEY.thumbprint()}
    assert "dpop-nonce" not in r.headers  # nonces are off by default


def test_dpop_partner_without_proof_is_refused(http: TestClient, world: World) -> None:
    r = token_response(http, world)
    assert r.status_code == 400
    # RFC 9449 §5 and RFC 6749 §5.2: an OAuth error document, not a problem document.
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {
        "error": "invalid_dpop_proof",
        "error_description": "this client must send a DPoP proof",
    }


def test_other_partner_may_choose_dpop_or_bearer(http: TestClient, world: World) -> None:
    bearer = token_response(http, world, partner="amt")
    assert bearer.json()["token_type"] == "Bearer"
    assert "cnf" not in claims_of(bearer.json()["access_token"])
    bound = token_response(http, world, partner="amt", dpop=proof("POST", TOKEN_URL))
    assert bound.json()["token_type"] == "DPoP"
    assert claims_of(bound.json()["access_token"])["cnf"]["jkt"] == KEY.thumbprint()


@pytest.mark.parametrize(
    ("make", "detail"),
    [
        (lambda: proof("GET", TOKEN_URL), "htm does not match"),
        (lambda: proof("POST", API_URL), "htu does not match"),
        (lambda: proof("POST", "http://testserver/oauth/token"), "htu does not match"),
        (lambda: proof("POST", TOKEN_URL, iat=int(time.time()) - 300), "too old"),
        (lambda: "garbage", "malformed"),
    ],
)
def test_bad_proof_at_the_token_endpoint_is_400(
    http: TestClient, world: World, make: Any, detail: str
) -> None:
    r = token_response(http, world, partner="amt", dpop=make())
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_dpop_proof"
    assert detail in r.json()["error_description"]


def test_token_endpoint_refuses_a_replayed_proof(http: TestClient, world: World) -> None:
    once = proof("POST", TOKEN_URL)
    assert token_response(http, world, dpop=once).status_code == 200
    r = token_response(http, world, dpop=once)
    assert r.status_code == 400
    assert "replayed" in r.json()["error_description"]


def test_token_endpoint_refuses_two_proofs(http: TestClient, world: World) -> None:
    headers = [("DPoP", proof("POST", TOKEN_URL)), ("DPoP", proof("POST", TOKEN_URL))]
    r = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=world.basic(),
        headers=httpx.Headers(headers),
    )
    assert r.status_code == 400
    assert "more than one DPoP header" in r.json()["error_description"]


def test_metadata_names_the_dpop_algorithms(http: TestClient) -> None:
    doc = http.get("/.well-known/oauth-authorization-server").json()
    assert doc["dpop_signing_alg_values_supported"] == ["ES256", "PS256", "EdDSA"]


# --- the API ----------------------------------------------------------------------------------


def test_bound_token_with_its_proof_is_accepted(http: TestClient, world: World) -> None:
    token = bound_token(http, world)
    r = call(http, token, proof(token=token))
    assert r.status_code == 200, r.text
    # Query strings are not part of htu.
    r = http.get(
        "/v1/referrals?limit=5",
        headers={"Authorization": f"DPoP {token}", "DPoP": proof(token=token)},
    )
    assert r.status_code == 200, r.text


def test_stolen_bound_token_without_its_key_is_refused(http: TestClient, world: World) -> None:
    token = bound_token(http, world)
    thief = ECKey.generate_key("P-256")
    # As a bearer token, with no proof, and with a proof of the thief's own key.
    assert_refused(call(http, token, None, scheme="Bearer"), "invalid_token", "sent as Bearer")
    assert_refused(call(http, token, None), "invalid_dpop_proof", "DPoP proof missing")
    r = call(http, token, proof(key=thief, token=token))
    assert_refused(r, "invalid_token", "does not match the token binding")


@pytest.mark.parametrize(
    ("make", "error", "detail"),
    [
        (lambda t: proof(token=None), "invalid_dpop_proof", "ath does not match"),
        (lambda t: proof(token=t + "x"), "invalid_dpop_proof", "ath does not match"),
        (lambda t: proof("POST", token=t), "invalid_dpop_proof", "htm does not match"),
        (
            lambda t: proof(url=f"{ISSUER}/v1/inbox", token=t),
            "invalid_dpop_proof",
            "htu does not match",
        ),
        (
            lambda t: proof(url="http://testserver/v1/referrals", token=t),
            "invalid_dpop_proof",
            "htu does not match",
        ),
        (
            lambda t: proof(token=t, iat=int(time.time()) + 600),
            "invalid_dpop_proof",
            "issued in the future",
        ),
        (lambda t: proof(token=t, iat=int(time.time()) - 600), "invalid_dpop_proof", "too old"),
        (lambda t: "not.a.proof", "invalid_dpop_proof", "malformed"),
    ],
)
def test_bad_proof_at_the_api_is_refused(
    http: TestClient, world: World, make: Any, error: str, detail: str
) -> None:
    token = bound_token(http, world)
    assert_refused(call(http, token, make(token)), error, detail)


def test_replayed_proof_at_the_api_is_refused(http: TestClient, world: World) -> None:
    token = bound_token(http, world)
    once = proof(token=token)
    assert call(http, token, once).status_code == 200
    assert_refused(call(http, token, once), "invalid_dpop_proof", "replayed")


def test_proof_seen_by_another_gateway_is_refused(http: TestClient, world: World) -> None:
    # The replay cache is in the database: a second gateway of the same hub refuses it too.
    token = bound_token(http, world)
    once = proof(token=token)
    assert call(http, token, once).status_code == 200
    other = create_app(world.hub, kafka_check=lambda: True)
    with TestClient(other, base_url=ISSUER) as second:
        assert_refused(call(second, token, once), "invalid_dpop_proof", "replayed")


def test_two_proofs_at_the_api_are_refused(http: TestClient, world: World) -> None:
    token = bound_token(http, world)
    headers = httpx.Headers(
        [
            ("Authorization", f"DPoP {token}"),
            ("DPoP", proof(token=token)),
            ("DPoP", proof(token=token)),
        ]
    )
    r = http.get("/v1/referrals", headers=headers)
    assert_refused(r, "invalid_dpop_proof", "more than one DPoP header")


def test_bearer_token_under_the_dpop_scheme_is_refused(http: TestClient, world: World) -> None:
    r = token_response(http, world, partner="amt")
    token = r.json()["access_token"]
    assert call(http, token, None, scheme="Bearer").status_code == 200
    assert_refused(call(http, token, proof(token=token)), "invalid_token", "not DPoP-bound")


def test_invalid_token_under_the_dpop_scheme_gets_a_dpop_challenge(http: TestClient) -> None:
    assert_refused(call(http, "x.y.z", proof(token="x.y.z")), "invalid_token", "malformed")


def test_missing_credentials_offer_both_schemes(http: TestClient) -> None:
    r = http.get("/v1/referrals")
    assert r.status_code == 401
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith("Bearer") and 'DPoP realm="talent-hub"' in challenge


def test_expired_replay_entries_are_purged(http: TestClient, world: World) -> None:
    from sqlalchemy import func, select

    from hub.auth.models import UsedDPoPProof

    token = bound_token(http, world)
    assert call(http, token, proof(token=token)).status_code == 200
    dpop = http.app.state.dpop  # type: ignore[attr-defined]
    with unit_of_work(world.hub.session_factory) as session:
        assert session.scalar(select(func.count()).select_from(UsedDPoPProof)) == 2
        dpop._purged_at = 0.0
        dpop._purge(session, time.time() + 3600)
        assert session.scalar(select(func.count()).select_from(UsedDPoPProof)) == 0


# --- nonces -------------------------------------------------------------------------------------


@pytest.mark.hub_settings(dpop_nonce_required=True, dpop_nonce_lifetime_seconds=60)
def test_token_endpoint_demands_a_nonce_and_accepts_its_own(http: TestClient, world: World) -> None:
    r = token_response(http, world, dpop=proof("POST", TOKEN_URL))
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"error": "use_dpop_nonce", "error_description": "DPoP nonce required"}
    assert r.headers["cache-control"] == "no-store"
    nonce = r.headers["dpop-nonce"]
    ok = token_response(http, world, dpop=proof("POST", TOKEN_URL, nonce=nonce))
    assert ok.status_code == 200, ok.text
    assert ok.headers["dpop-nonce"]  # the next one, for the next token request


@pytest.mark.hub_settings(dpop_nonce_required=True, dpop_nonce_lifetime_seconds=60)
def test_stale_or_forged_nonce_gets_a_fresh_one(http: TestClient, world: World) -> None:
    state = http.app.state  # type: ignore[attr-defined]
    r = token_response(http, world, dpop=proof("POST", TOKEN_URL, nonce="forged"))
    assert r.json()["error"] == "use_dpop_nonce"
    assert "expired or unknown" in r.json()["error_description"]
    stale = state.dpop.nonces.issue(time.time() - 120)
    r = token_response(http, world, dpop=proof("POST", TOKEN_URL, nonce=stale))
    assert r.json()["error"] == "use_dpop_nonce"
    assert r.headers["dpop-nonce"] != stale


# --- the partner helper -------------------------------------------------------------------------


@pytest.mark.hub_settings(dpop_nonce_required=True)
def test_partner_helper_fetches_bound_tokens_and_handles_the_nonce(
    http: TestClient, world: World
) -> None:
    client_id, secret = world.basic()
    auth = DPoPAuth(TOKEN_URL, client_id, client_secret=secret, scope="referrals:read")
    seen: list[tuple[str, int]] = []
    http.event_hooks["response"].append(lambda r: seen.append((r.url.path, r.status_code)))
    for _ in range(2):
        r = http.get("/v1/referrals", auth=auth)
        assert r.status_code == 200, r.text
    assert seen == [
        ("/oauth/token", 400),  # use_dpop_nonce
        ("/oauth/token", 200),
        ("/v1/referrals", 200),
        ("/v1/referrals", 200),  # the token is reused, each call with a fresh proof
    ]
    assert auth.access_token is not None
    assert claims_of(auth.access_token)["cnf"]["jkt"] == auth.dpop_key.thumbprint()


def test_partner_helper_with_private_key_jwt(http: TestClient, world: World) -> None:
    partner_key = ECKey.generate_key("P-256", auto_kid=True)
    from hub.partners.service import register_partner

    with unit_of_work(world.hub.session_factory) as session:
        creds = register_partner(
            session,
            partner_id="ude-essen",
            name="UDE Campus Essen",
            kind="university",
            scopes=["referrals:read"],
            auth_method="private_key_jwt",
            jwks={"keys": [partner_key.as_dict(private=False)]},
            dpop_required=True,
        )
    auth = DPoPAuth(TOKEN_URL, creds["client_id"], private_key=partner_key)
    r = http.get("/v1/referrals", auth=auth)
    assert r.status_code == 200, r.text
    # The assertion names the issuer, which the strict audience rule accepts too.
    assert auth.access_token is not None


# --- the CLI -------------------------------------------------------------------------------------


def test_cli_switches_dpop_per_partner(world: World, database_url: str, tmp_path: Path) -> None:
    env = {"HUB_DATABASE_URL": database_url, "HUB_DATA_DIR": str(tmp_path)}
    runner = CliRunner()
    r = runner.invoke(main, ["partners", "dpop", "ude", "--off"], env=env)
    assert r.exit_code == 0, r.output
    assert _dpop_required(world.hub, "ude") is False
    r = runner.invoke(main, ["partners", "dpop", "ude", "--on"], env=env)
    assert r.exit_code == 0, r.output
    assert _dpop_required(world.hub, "ude") is True
    r = runner.invoke(main, ["partners", "dpop", "nobody", "--on"], env=env)
    assert r.exit_code != 0 and "no partner" in r.output
    args = ["partners", "add", "hwk-krefeld", "--name", "HWK", "--kind", "chamber", "--dpop"]
    r = runner.invoke(main, args, env=env)
    assert r.exit_code == 0, r.output
    assert _dpop_required(world.hub, "hwk-krefeld") is True


def _dpop_required(hub: Hub, partner_id: str) -> bool:
    with hub.session_factory() as session:
        partner = session.get(Partner, partner_id)
        assert partner is not None
        return partner.dpop_required
