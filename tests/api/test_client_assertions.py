"""``private_key_jwt`` client assertions at the gateway: each refusal, and client revocation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from hub.app import create_app
from hub.db import unit_of_work
from hub.partners.models import OAuthClient
from hub.partners.service import register_partner, revoke_client
from tests.hubtest import make_hub

ISSUER = "https://hub.test"
TOKEN_URL = f"{ISSUER}/oauth/token"
EC = ECKey.generate_key("P-256", auto_kid=True)
RSA = RSAKey.generate_key(2048, auto_kid=True)
ED = OKPKey.generate_key("Ed25519", auto_kid=True)


class World:
    """A hub with one private_key_jwt client holding an EC, an RSA and an Ed25519 key."""

    def __init__(self, database_url: str, tmp_path: Path, **settings: Any) -> None:
        self.hub, self.partners = make_hub(database_url, tmp_path, issuer=ISSUER, **settings)
        jwks = {"keys": [k.as_dict(private=False) for k in (EC, RSA, ED)]}
        with unit_of_work(self.hub.session_factory) as session:
            self.client_id = register_partner(
                session,
                partner_id="ude-essen",
                name="UDE Campus Essen",
                kind="university",
                scopes=["referrals:read"],
                auth_method="private_key_jwt",
                jwks=jwks,
            )["client_id"]

    def assertion(
        self, key: Any = EC, alg: str = "ES256", header: dict[str, Any] | None = None, **claims: Any
    ) -> str:
        now = int(time.time())
        body: dict[str, Any] = {"iss": self.client_id, "sub": self.client_id, "aud": ISSUER}
        body.update(iat=now, exp=now + 30, jti=str(uuid.uuid4()))
        body.update(claims)
        head = {"alg": alg, "kid": key.kid, **(header or {})}
        return jwt.encode(
            {k: v for k, v in head.items() if v is not None},
            {k: v for k, v in body.items() if v is not None},
            key,
            [alg],
        )


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


def post(http: TestClient, assertion: str, **extra: str) -> httpx.Response:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
        **extra,
    }
    return http.post("/oauth/token", data=form)


def refused(r: httpx.Response, detail: str) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"] == "invalid_client"
    assert detail in r.json()["error_description"], r.json()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(world: World, alg: str, secret: bytes | None) -> str:
    """An assertion with ``alg`` none or HS256, keyed with what an attacker can know."""
    now = int(time.time())
    head = b64(json.dumps({"alg": alg, "kid": EC.kid}).encode())
    claims = {"iss": world.client_id, "sub": world.client_id, "aud": ISSUER, "iat": now}
    claims.update(exp=now + 30, jti=str(uuid.uuid4()))
    signing_input = f"{head}.{b64(json.dumps(claims).encode())}"
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest() if secret else b""
    return f"{signing_input}.{b64(sig)}"


def now_plus(seconds: int) -> int:
    return int(time.time()) + seconds


# --- accepted ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "alg", "header"),
    [
        (EC, "ES256", None),
        (RSA, "PS256", None),
        (ED, "EdDSA", None),
        (EC, "ES256", {"typ": "JWT"}),
        (EC, "ES256", {"typ": "client-authentication+jwt"}),
    ],
)
def test_allowed_algorithms_and_types(
    http: TestClient, world: World, key: Any, alg: str, header: Any
) -> None:
    r = post(http, world.assertion(key, alg, header))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("aud", [ISSUER, [ISSUER], TOKEN_URL, [ISSUER, TOKEN_URL]])
def test_issuer_and_token_endpoint_audiences_by_default(
    http: TestClient, world: World, aud: Any
) -> None:
    assert post(http, world.assertion(aud=aud)).status_code == 200


@pytest.mark.hub_settings(client_assertion_token_endpoint_audience=False)
def test_strict_audience_accepts_only_the_issuer(http: TestClient, world: World) -> None:
    assert post(http, world.assertion(aud=ISSUER)).status_code == 200
    assert post(http, world.assertion(aud=[ISSUER])).status_code == 200
    refused(post(http, world.assertion(aud=TOKEN_URL)), "audience mismatch")
    refused(post(http, world.assertion(aud=[ISSUER, TOKEN_URL])), "audience mismatch")


# --- refused ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "detail"),
    [
        (lambda w: forged(w, "none", None), "algorithm not allowed"),
        (lambda w: forged(w, "HS256", EC.as_pem(private=False)), "algorithm not allowed"),
        (
            lambda w: w.assertion(OctKey.generate_key(256, auto_kid=True), "HS256"),
            "algorithm not allowed",
        ),
        (lambda w: w.assertion(RSA, "RS256"), "algorithm not allowed"),
        (
            lambda w: w.assertion(ECKey.generate_key("P-384", auto_kid=True), "ES384"),
            "algorithm not allowed",
        ),
    ],
)
def test_algorithm_outside_the_allow_list_is_refused(
    http: TestClient, world: World, make: Any, detail: str
) -> None:
    refused(post(http, make(world)), detail)


@pytest.mark.parametrize(
    "aud",
    [
        "https://other-as.test",
        "https://other-as.test/token",
        [ISSUER, "https://other-as.test"],
        [],
        None,
        42,
        ISSUER + "/",
    ],
)
def test_wrong_audience_is_refused(http: TestClient, world: World, aud: Any) -> None:
    refused(post(http, world.assertion(aud=aud)), "audience mismatch")


@pytest.mark.parametrize(
    ("claims", "detail"),
    [
        (lambda: {"exp": now_plus(61)}, "lifetime exceeds 60 seconds"),
        (lambda: {"exp": now_plus(3600)}, "lifetime exceeds 60 seconds"),
        (lambda: {"iat": now_plus(-30), "exp": now_plus(40)}, "lifetime exceeds"),
        (lambda: {"iat": None, "exp": now_plus(120)}, "lifetime exceeds"),
        (lambda: {"exp": now_plus(-120)}, "expired"),
        (lambda: {"exp": None}, "exp"),
        (lambda: {"iat": now_plus(120), "exp": now_plus(150)}, "issued in the future"),
        (lambda: {"nbf": now_plus(120)}, "not yet valid"),
    ],
)
def test_lifetime_and_times_are_checked(
    http: TestClient, world: World, claims: Any, detail: str
) -> None:
    refused(post(http, world.assertion(**claims())), detail)


@pytest.mark.parametrize(
    ("claims", "detail"),
    [
        ({"jti": None}, "missing jti"),
        ({"jti": ""}, "missing jti"),
        ({"jti": "x" * 256}, "missing jti"),
        ({"iss": "someone-else"}, "iss and sub"),
        ({"sub": "someone-else"}, "iss and sub"),
    ],
)
def test_identity_claims_are_checked(
    http: TestClient, world: World, claims: dict[str, Any], detail: str
) -> None:
    refused(post(http, world.assertion(**claims)), detail)


@pytest.mark.parametrize("typ", ["at+jwt", "dpop+jwt", "JOSE"])
def test_jwt_made_for_something_else_is_refused(http: TestClient, world: World, typ: str) -> None:
    refused(post(http, world.assertion(header={"typ": typ})), "typ not allowed")


def test_assertion_signed_by_an_unregistered_key_is_refused(http: TestClient, world: World) -> None:
    impostor = ECKey.generate_key("P-256", parameters={"kid": str(EC.kid)})
    refused(post(http, world.assertion(impostor)), "signature invalid")


def test_client_id_parameter_must_match(http: TestClient, world: World) -> None:
    refused(post(http, world.assertion(), client_id="amt-1"), "does not match")


def test_replayed_assertion_is_refused(http: TestClient, world: World) -> None:
    once = world.assertion()
    assert post(http, once).status_code == 200
    refused(post(http, once), "replayed")


def test_reused_jti_in_a_new_assertion_is_refused(http: TestClient, world: World) -> None:
    assert post(http, world.assertion(jti="same")).status_code == 200
    refused(post(http, world.assertion(jti="same", iat=now_plus(1))), "replayed")


def test_replay_at_another_gateway_is_refused(http: TestClient, world: World) -> None:
    once = world.assertion()
    assert post(http, once).status_code == 200
    with TestClient(create_app(world.hub, kafka_check=lambda: True), base_url=ISSUER) as other:
        refused(post(other, once), "replayed")


def test_failed_request_does_not_burn_the_jti(http: TestClient, world: World) -> None:
    # A refused request records nothing: the same jti works once the request is right.
    r = post(http, world.assertion(jti="j-1"), scope="status:write")
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    assert post(http, world.assertion(jti="j-1")).status_code == 200


# --- revoked clients ---------------------------------------------------------------------------


def test_tokens_of_a_revoked_client_stop_working_at_once(http: TestClient, world: World) -> None:
    token = post(http, world.assertion()).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert http.get("/v1/referrals", headers=headers).status_code == 200
    with unit_of_work(world.hub.session_factory) as session:
        client = session.get(OAuthClient, world.client_id)
        assert client is not None
        revoke_client(session, partner_id=client.partner_id, client_id=client.client_id)
    r = http.get("/v1/referrals", headers=headers)
    assert r.status_code == 401
    assert r.json()["detail"] == "token client revoked"
    refused(post(http, world.assertion()), "revoked")
