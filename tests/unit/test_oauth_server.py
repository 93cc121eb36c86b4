"""The token endpoint, metadata and JWKS, through the real HTTP stack in-process."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from typing import Any, NamedTuple

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from joserfc import jws, jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

import hub.auth.models  # noqa: F401  (registers the tables)
from hub.auth.keys import SigningKeys
from hub.auth.routes import router
from hub.auth.scopes import SCOPES
from hub.auth.secrets import hash_secret, new_client_secret
from hub.auth.server import error_response
from hub.auth.tokens import build_token_validator
from hub.db import Base, make_engine, make_session_factory, unit_of_work
from hub.errors import HubError, InvalidGrant
from hub.partners.models import OAuthClient, Partner
from hub.settings import Settings

ISSUER = "https://hub.test"
TOKEN_URL = f"{ISSUER}/oauth/token"
FORM = {"content-type": "application/x-www-form-urlencoded"}


class World:
    """The app under test and the credentials of its clients."""

    def __init__(self, tmp_path: Any) -> None:
        self.settings = Settings(data_dir=tmp_path, issuer=ISSUER)
        self.engine = make_engine(self.settings.resolved_database_url)
        Base.metadata.create_all(self.engine)
        self.factory = make_session_factory(self.engine)
        self.secret = new_client_secret()
        self.client_key = ECKey.generate_key("P-256", auto_kid=True)
        self.rsa_key = RSAKey.generate_key(2048, auto_kid=True)
        self._seed()
        self.app = _app(self.settings, self.factory)

    def _seed(self) -> None:
        public = {"keys": [self.client_key.as_dict(private=False)]}
        rsa_public = {"keys": [self.rsa_key.as_dict(private=False)]}
        with unit_of_work(self.factory) as s:
            s.add(Partner(id="ude", name="Universität Duisburg-Essen", kind="university"))
            s.add(_client("basic", "client_secret_basic", "referrals:read referrals:write"))
            s.get(OAuthClient, "basic").secret_hash = hash_secret(self.secret)  # type: ignore[union-attr]
            s.add(_client("jwt", "private_key_jwt", "referrals:read", jwks=public))
            s.add(_client("rsa", "private_key_jwt", "referrals:read", jwks=rsa_public))

    def basic(self, client_id: str = "basic", secret: str | None = None) -> dict[str, str]:
        raw = f"{client_id}:{secret or self.secret}".encode()
        return {**FORM, "authorization": "Basic " + base64.b64encode(raw).decode()}

    def assertion(self, key: Any = None, alg: str = "ES256", **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": "jwt", "sub": "jwt", "aud": TOKEN_URL, "iat": now, "exp": now + 30}
        body["jti"] = str(uuid.uuid4())
        body.update(claims)
        signing_key = key or self.client_key
        header = {"alg": alg, "kid": signing_key.kid}
        return jwt.encode(
            header, {k: v for k, v in body.items() if v is not None}, signing_key, [alg]
        )


def _client(client_id: str, method: str, scopes: str, jwks: Any = None) -> OAuthClient:
    return OAuthClient(
        client_id=client_id, partner_id="ude", auth_method=method, scopes=scopes, jwks=jwks
    )


def _app(settings: Settings, factory: Any) -> FastAPI:
    app = FastAPI()
    app.include_router(router)
    app.state.settings = settings
    app.state.session_factory = factory
    app.state.signing_keys = SigningKeys()
    app.state.token_validator = build_token_validator(
        settings=settings, session_factory=factory, signing_keys=app.state.signing_keys
    )

    @app.exception_handler(HubError)
    async def problem(request: Request, exc: HubError) -> JSONResponse:
        return JSONResponse(exc.to_problem(), status_code=exc.status)

    return app


@pytest.fixture
def world(tmp_path: Any) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.engine.dispose()


@pytest.fixture
def http(world: World) -> Iterator[TestClient]:
    with TestClient(world.app, base_url=ISSUER) as client:
        yield client


def jwt_form(assertion: str, **extra: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
        **extra,
    }


def assert_invalid_client(response: httpx.Response, detail: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "invalid_client"
    assert detail in response.json()["error_description"]
    assert response.headers["www-authenticate"] == 'Basic realm="talent-hub"'
    assert response.headers["cache-control"] == "no-store"


def test_client_secret_basic_gets_a_token_valid_at_the_api(http: TestClient, world: World) -> None:
    r = http.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=world.basic())
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    assert body["scope"] == "referrals:read referrals:write"
    principal = world.app.state.token_validator.validate(body["access_token"])
    assert (principal.partner_id, principal.client_id) == ("ude", "basic")
    assert principal.scopes == {"referrals:read", "referrals:write"}


def test_wrong_secret_is_401(http: TestClient, world: World) -> None:
    r = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=world.basic(secret="wrong"),
    )
    assert_invalid_client(r, "invalid client credentials")


def test_unknown_client_is_401(http: TestClient, world: World) -> None:
    headers = world.basic(client_id="nobody")
    r = http.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=headers)
    assert_invalid_client(r, "invalid client credentials")


def test_revoked_client_is_401(http: TestClient, world: World) -> None:
    with unit_of_work(world.factory) as s:
        s.get(OAuthClient, "basic").revoked_at = s.get(Partner, "ude").created_at  # type: ignore[union-attr]
    r = http.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=world.basic())
    assert_invalid_client(r, "revoked")


def test_private_key_jwt_es256_gets_a_token(http: TestClient, world: World) -> None:
    r = http.post("/oauth/token", data=jwt_form(world.assertion()), headers=FORM)
    assert r.status_code == 200, r.text
    principal = world.app.state.token_validator.validate(r.json()["access_token"])
    assert principal.client_id == "jwt"
    assert principal.scopes == {"referrals:read"}


def test_assertion_audience_may_be_the_issuer(http: TestClient, world: World) -> None:
    r = http.post("/oauth/token", data=jwt_form(world.assertion(aud=[ISSUER])), headers=FORM)
    assert r.status_code == 200, r.text


class FROM_NOW(NamedTuple):
    seconds: int


@pytest.mark.parametrize(
    ("claims", "detail"),
    [
        ({"aud": "https://other.test/token"}, "audience mismatch"),
        ({"exp": FROM_NOW(3600)}, "lifetime exceeds 60 seconds"),
        ({"iat": None, "exp": FROM_NOW(120)}, "lifetime exceeds"),
        ({"exp": FROM_NOW(-120)}, "expired"),
        ({"exp": None}, "exp"),
        ({"jti": None}, "missing jti"),
        ({"iss": "basic"}, "iss and sub"),
    ],
)
def test_bad_assertion_is_401(
    http: TestClient, world: World, claims: dict[str, Any], detail: str
) -> None:
    # Times are resolved when the test runs, not when it is collected.
    now = int(time.time())
    claims = {k: now + v.seconds if isinstance(v, FROM_NOW) else v for k, v in claims.items()}
    r = http.post("/oauth/token", data=jwt_form(world.assertion(**claims)), headers=FORM)
    assert_invalid_client(r, detail)


def test_replayed_assertion_is_401(http: TestClient, world: World) -> None:
    assertion = world.assertion()
    assert http.post("/oauth/token", data=jwt_form(assertion), headers=FORM).status_code == 200
    r = http.post("/oauth/token", data=jwt_form(assertion), headers=FORM)
    assert_invalid_client(r, "replayed")


def test_rs256_assertion_is_401(http: TestClient, world: World) -> None:
    assertion = world.assertion(key=world.rsa_key, alg="RS256", iss="rsa", sub="rsa")
    r = http.post("/oauth/token", data=jwt_form(assertion), headers=FORM)
    assert_invalid_client(r, "algorithm not allowed")


def test_hs256_assertion_is_401(http: TestClient, world: World) -> None:
    assertion = world.assertion(key=OctKey.generate_key(256, auto_kid=True), alg="HS256")
    r = http.post("/oauth/token", data=jwt_form(assertion), headers=FORM)
    assert_invalid_client(r, "algorithm not allowed")


def test_assertion_signed_by_another_key_is_401(http: TestClient, world: World) -> None:
    other = ECKey.generate_key("P-256", parameters={"kid": str(world.client_key.kid)})
    r = http.post("/oauth/token", data=jwt_form(world.assertion(key=other)), headers=FORM)
    assert_invalid_client(r, "signature invalid")


def test_method_the_client_is_not_registered_for_is_401(http: TestClient, world: World) -> None:
    headers = world.basic(client_id="jwt", secret="anything")
    r = http.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=headers)
    assert_invalid_client(r, "not registered for client_secret_basic")


def test_requested_scope_must_be_a_subset(http: TestClient, world: World) -> None:
    form = {"grant_type": "client_credentials", "scope": "referrals:read"}
    r = http.post("/oauth/token", data=form, headers=world.basic())
    assert r.json()["scope"] == "referrals:read"
    form["scope"] = "referrals:read status:write"
    r = http.post("/oauth/token", data=form, headers=world.basic())
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_scope"


def test_unsupported_grant_is_400(http: TestClient, world: World) -> None:
    r = http.post("/oauth/token", data={"grant_type": "password"}, headers=world.basic())
    assert r.status_code == 400
    assert r.json()["error"] == "unsupported_grant_type"


def test_json_body_is_rejected(http: TestClient, world: World) -> None:
    r = http.post("/oauth/token", json={"grant_type": "client_credentials"})
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"


def test_metadata_describes_the_server(http: TestClient) -> None:
    doc = http.get("/.well-known/oauth-authorization-server").json()
    assert doc["issuer"] == ISSUER
    assert doc["token_endpoint"] == TOKEN_URL
    assert doc["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    assert doc["grant_types_supported"] == ["client_credentials"]
    assert set(doc["token_endpoint_auth_methods_supported"]) == {
        "private_key_jwt",
        "client_secret_basic",
    }
    assert "RS256" not in doc["token_endpoint_auth_signing_alg_values_supported"]
    assert doc["scopes_supported"] == list(SCOPES)
    assert doc["response_types_supported"] == ["token"]


def test_metadata_passes_authlibs_rfc8414_validation(http: TestClient) -> None:
    from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

    doc = http.get("/.well-known/oauth-authorization-server").json()
    AuthorizationServerMetadata(doc).validate()  # raises on a missing or malformed member


REFUSALS = {
    "form as JSON": lambda w: {"json": {"grant_type": "client_credentials"}},
    "repeated parameter": lambda w: {
        "content": "grant_type=client_credentials&grant_type=client_credentials",
        "headers": w.basic(),
    },
    "no grant_type": lambda w: {"data": {}, "headers": w.basic()},
    "password grant": lambda w: {"data": {"grant_type": "password"}, "headers": w.basic()},
    "scope beyond the client's": lambda w: {
        "data": {"grant_type": "client_credentials", "scope": "status:write"},
        "headers": w.basic(),
    },
    "unknown client": lambda w: {
        "data": {"grant_type": "client_credentials"},
        "headers": w.basic("nobody"),
    },
    "client_secret_post": lambda w: {
        "data": {"grant_type": "client_credentials", "client_id": "basic", "client_secret": "x"}
    },
    "bad assertion": lambda w: {"data": jwt_form("not-a-jwt")},
}
EXPECTED = {
    "form as JSON": (400, "invalid_request"),
    "repeated parameter": (400, "invalid_request"),
    "no grant_type": (400, "invalid_request"),
    "password grant": (400, "unsupported_grant_type"),
    "scope beyond the client's": (400, "invalid_scope"),
    "unknown client": (401, "invalid_client"),
    "client_secret_post": (401, "invalid_client"),
    "bad assertion": (401, "invalid_client"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_every_refusal_is_an_rfc6749_error_document(
    http: TestClient, world: World, case: str
) -> None:
    r = http.post("/oauth/token", **REFUSALS[case](world))
    status, error = EXPECTED[case]
    assert (r.status_code, r.json().get("error")) == (status, error), r.text
    # RFC 6749 §5.2: application/json with error and error_description, not RFC 9457.
    assert r.headers["content-type"] == "application/json"
    assert set(r.json()) == {"error", "error_description"}
    assert r.json()["error_description"]
    assert r.headers["cache-control"] == "no-store"
    assert ("www-authenticate" in r.headers) == (status == 401)


def test_error_description_keeps_to_the_characters_rfc6749_allows() -> None:
    body = error_response(InvalidGrant('scope "x\\y" für dich', error="invalid_scope"))
    assert body == {"error": "invalid_scope", "error_description": "scope 'x?y' f?r dich"}


def test_openapi_describes_token_errors_as_json(http: TestClient) -> None:
    responses = http.app.openapi()["paths"]["/oauth/token"]["post"]["responses"]  # type: ignore[attr-defined]
    for status in ("400", "401"):
        assert list(responses[status]["content"]) == ["application/json"]
        assert responses[status]["content"]["application/json"]["schema"]["required"] == ["error"]


def test_jwks_publishes_the_signing_key_without_private_parts(
    http: TestClient, world: World
) -> None:
    r = http.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=world.basic())
    kid = jws.extract_compact(r.json()["access_token"].encode()).headers()["kid"]
    keys = http.get("/.well-known/jwks.json").json()["keys"]
    assert [k["kid"] for k in keys] == [kid]
    assert keys[0]["alg"] == "ES256" and keys[0]["use"] == "sig" and keys[0]["kty"] == "EC"
    assert "d" not in keys[0]
