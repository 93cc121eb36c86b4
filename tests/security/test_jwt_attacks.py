"""Attacks on the access tokens of the partner API and on the token endpoint.

Every forged, tampered, confused or broken token is sent to every partner route (with ids
of objects the claimed partner owns) and must be refused with 401 and a problem document,
never 500, without changing anything and without the hub fetching a key from anywhere the
token points to. Claim-level attacks are signed with the hub's real key, so only the one
wrong thing can make them fail.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from hub.auth.cache import drop_after_commit
from hub.auth.tokens import build_token_validator
from hub.bootstrap import Hub
from hub.db import unit_of_work, utcnow
from hub.partners.models import OAuthClient, Partner
from hub.partners.service import add_client, deactivate_partner
from hub.settings import ExternalIssuer
from tests.hubtest import Partners, api_client, make_hub
from tests.security.support import (
    ALL_SCOPES,
    NO_RATE_LIMITS,
    World,
    assert_problem,
    bearer,
    changes,
    hub_signing_key,
    partner_requests,
    problem_failure,
    seed_world,
    snapshot,
)

IDP = "https://idp.duisburg.test"
IDP_JWKS = f"{IDP}/jwks"
ATTACKER = "https://attacker.example"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
IDP_KEY = ECKey.generate_key("P-256", {"alg": "ES256", "use": "sig"}, auto_kid=True)
ATTACKER_KEY = ECKey.generate_key("P-256", {"alg": "ES256"}, auto_kid=True)
ATTACKER_RSA = RSAKey.generate_key(2048, auto_kid=True)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Env:
    """The hub under attack, what an attacker can see of it, and a partner's own keys."""

    def __init__(self, client: TestClient, hub: Hub, partners: Partners, world: World) -> None:
        self.client, self.hub, self.partners, self.world = client, hub, partners, world
        self.fetched: list[str] = []
        self.real = partners.token(client, "ude", ALL_SCOPES)
        self.jwks_text = client.get("/.well-known/jwks.json").text  # what anyone can fetch
        self.public = json.loads(self.jwks_text)["keys"][0]
        self.key = hub_signing_key(hub)
        self.kid = str(self.key.kid)
        self.issuer = hub.settings.resolved_issuer
        self.audience = hub.settings.api_audience
        self.client_id = partners.creds["ude"]["client_id"]
        self.client_key = ECKey.generate_key("P-256", {"alg": "ES256"}, auto_kid=True)
        with unit_of_work(hub.session_factory) as session:
            creds = add_client(
                session,
                partner_id="ude",
                scopes=["referrals:read"],
                auth_method="private_key_jwt",
                jwks={"keys": [self.client_key.as_dict(private=False)]},
            )
        self.jwt_client_id = str(creds["client_id"])
        self.token_url = self.issuer.rstrip("/") + "/oauth/token"

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.issuer,
            "sub": self.client_id,
            "aud": self.audience,
            "client_id": self.client_id,
            "partner_id": "ude",
            "scope": ALL_SCOPES,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
        }
        body.update(overrides)
        return {k: v for k, v in body.items() if v is not None}

    def mint(
        self, key: Any = None, alg: str = "ES256", header: dict[str, Any] | None = None, **kw: Any
    ) -> str:
        """A token signed properly by ``key`` (default: the hub's own key)."""
        key = key or self.key
        head = {"alg": alg, "typ": "at+jwt", "kid": key.kid, **(header or {})}
        head = {k: v for k, v in head.items() if v is not None}
        return jwt.encode(head, self.claims(**kw), key, [alg])

    def raw(self, header: dict[str, Any], claims: Any = None, secret: bytes | None = None) -> str:
        """A token built by hand; HMAC-signed with ``secret``, else an empty signature."""
        payload = claims if claims is not None else self.claims()
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(body)}"
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
        sig = b""
        if secret is not None:
            sig = hmac.new(secret, signing_input.encode(), digest[header["alg"]]).digest()
        return f"{signing_input}.{b64(sig)}"

    def header(self, **overrides: Any) -> dict[str, Any]:
        return {"alg": "ES256", "typ": "at+jwt", "kid": self.kid, **overrides}

    def public_pem(self) -> bytes:
        return ECKey.import_key(self.public).as_pem(private=False)

    def public_der(self) -> bytes:
        pem = self.public_pem()
        loaded = serialization.load_pem_public_key(pem)
        return loaded.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def assertion(self, key: Any = None, header: dict[str, Any] | None = None, **kw: Any) -> str:
        """A client assertion (RFC 7523) of the private_key_jwt client."""
        now = int(time.time())
        body = {
            "iss": self.jwt_client_id,
            "sub": self.jwt_client_id,
            "aud": self.token_url,
            "iat": now,
            "exp": now + 30,
            "jti": str(uuid.uuid4()),
        }
        body.update(kw)
        key = key or self.client_key
        head = {"alg": "ES256", "kid": key.kid, **(header or {})}
        return jwt.encode(head, {k: v for k, v in body.items() if v is not None}, key, ["ES256"])

    def tampered(self, **changes: Any) -> str:
        """The real token with its payload changed and its original signature kept."""
        head, payload, sig = self.real.split(".")
        claims = json.loads(unb64(payload))
        claims.update(changes)
        return f"{head}.{b64(json.dumps(claims).encode())}.{sig}"

    def reset(self) -> None:
        with unit_of_work(self.hub.session_factory) as session:
            partner = session.get(Partner, "ude")
            assert partner is not None
            partner.active = True
            for client in partner.clients:
                client.revoked_at = None
            clients = [c.client_id for c in partner.clients]
            drop_after_commit(session, partners=["ude"], clients=clients)

    def deactivate_ude(self) -> str:
        with unit_of_work(self.hub.session_factory) as session:
            deactivate_partner(session, partner_id="ude")
        return self.real


@pytest.fixture(scope="module")
def env(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """One hub per database for the whole module; it also trusts an external IdP (the
    city's), whose JWKS a mock transport serves and which records every key fetch."""
    idp = ExternalIssuer(issuer=IDP, jwks_url=IDP_JWKS, algorithms=["ES256"], partners=["ude"])
    data_dir = tmp_path_factory.mktemp("jwt")
    hub, partners = make_hub(
        module_database_url, data_dir, external_issuers=[idp], **NO_RATE_LIMITS
    )
    with api_client(hub) as client:
        world = seed_world(client, partners, hub)
        built = Env(client, hub, partners, world)

        def serve(request: httpx.Request) -> httpx.Response:
            built.fetched.append(str(request.url))
            if str(request.url) == IDP_JWKS:
                return httpx.Response(200, json={"keys": [IDP_KEY.as_dict(private=False)]})
            return httpx.Response(200, json={"keys": [ATTACKER_KEY.as_dict(private=False)]})

        app: Any = client.app
        app.state.token_validator = build_token_validator(
            settings=hub.settings,
            session_factory=hub.session_factory,
            signing_keys=app.state.signing_keys,
            http=httpx.Client(transport=httpx.MockTransport(serve)),
        )
        yield built
    hub.engine.dispose()


@pytest.fixture(autouse=True)
def _restore(env: Env) -> Iterator[None]:
    """Undo what a test did to ude (deactivated, a client revoked)."""
    yield
    env.reset()


def refusals(env: Env, authorization: str | None) -> list[str]:
    """What went wrong when every partner route was called with this Authorization header."""
    before = snapshot(env.hub)
    failures = []
    headers = {"Authorization": authorization} if authorization is not None else {}
    for (verb, _), (path, body) in sorted(partner_requests(env.world).items()):
        kwargs: dict[str, Any] = {"json": body} if body is not None else {}
        r = env.client.request(verb, path, headers=headers, **kwargs)
        failures.append(problem_failure(r, 401))
        if not r.headers.get("www-authenticate", "").startswith("Bearer"):
            failures.append(f"{verb} {path}: no Bearer challenge")
    diff = changes(before, snapshot(env.hub))
    if diff:
        failures.append(f"state changed: {diff}")
    if set(env.fetched) - {IDP_JWKS}:
        failures.append(f"the hub fetched keys from {env.fetched}")
    return [f for f in failures if f]


Attack = Callable[[Env], str]

ATTACKS: dict[str, Attack] = {
    # --- algorithms: none, and HMAC with our public key as the secret (RFC 8725 §2.1, §3.1)
    "alg-none": lambda e: e.raw(e.header(alg="none")),
    "alg-None": lambda e: e.raw(e.header(alg="None")),
    "alg-NONE": lambda e: e.raw(e.header(alg="NONE")),
    "alg-none-with-a-real-signature": lambda e: ".".join(
        [b64(json.dumps(e.header(alg="none")).encode()), *e.real.split(".")[1:]]
    ),
    "HS256-public-key-pem": lambda e: e.raw(e.header(alg="HS256"), secret=e.public_pem()),
    "HS256-public-key-der": lambda e: e.raw(e.header(alg="HS256"), secret=e.public_der()),
    "HS256-public-jwk-json": lambda e: e.raw(
        e.header(alg="HS256"), secret=json.dumps(e.public).encode()
    ),
    "HS256-jwks-document": lambda e: e.raw(e.header(alg="HS256"), secret=e.jwks_text.encode()),
    "HS512-public-key-pem": lambda e: e.raw(e.header(alg="HS512"), secret=e.public_pem()),
    "RS256-attacker-key-with-our-kid": lambda e: e.mint(
        ATTACKER_RSA, "RS256", header={"kid": e.kid}
    ),
    # --- claims, signed with the hub's real key
    "wrong-iss": lambda e: e.mint(iss="https://evil.example"),
    "iss-with-trailing-slash": lambda e: e.mint(iss=e.issuer + "/"),
    "iss-missing": lambda e: e.mint(iss=None),
    "wrong-aud": lambda e: e.mint(aud="urn:other:api"),
    "aud-list-without-ours": lambda e: e.mint(aud=["urn:other:api", e.issuer]),
    "aud-missing": lambda e: e.mint(aud=None),
    "typ-missing": lambda e: e.mint(header={"typ": None}),
    "typ-JWT": lambda e: e.mint(header={"typ": "JWT"}),
    "typ-application-jwt": lambda e: e.mint(header={"typ": "application/jwt"}),
    "expired-long-ago": lambda e: e.mint(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
    "expired-just-beyond-skew": lambda e: e.mint(
        exp=int(time.time()) - e.hub.settings.clock_skew_seconds - 5
    ),
    "iat-far-in-the-future": lambda e: e.mint(
        iat=int(time.time()) + 86400, nbf=None, exp=int(time.time()) + 90000
    ),
    "nbf-far-in-the-future": lambda e: e.mint(
        nbf=int(time.time()) + 86400, exp=int(time.time()) + 90000
    ),
    "exp-missing": lambda e: e.mint(exp=None),
    "exp-as-text": lambda e: e.mint(exp=str(int(time.time()) + 300)),
    "iat-as-boolean": lambda e: e.mint(iat=True),
    "jti-missing": lambda e: e.mint(jti=None),
    "partner-unknown": lambda e: e.mint(partner_id="nobody"),
    "partner-missing": lambda e: e.mint(partner_id=None),
    "partner-as-list": lambda e: e.mint(partner_id=["ude"]),
    "client-id-missing": lambda e: e.mint(client_id=None),
    # --- keys: unknown, look-alike, another issuer's, a partner's, and header-borne ones
    "unknown-kid": lambda e: e.mint(header={"kid": "no-such-key"}),
    "kid-missing": lambda e: e.mint(header={"kid": None}),
    "kid-as-list": lambda e: e.raw(e.header(kid=[e.kid])),
    "fresh-key-with-our-kid": lambda e: e.mint(ECKey.generate_key("P-256", {"kid": e.kid})),
    "fresh-key-with-look-alike-kid": lambda e: e.mint(
        ECKey.generate_key("P-256", {"kid": e.kid[:-1] + ("A" if e.kid[-1] != "A" else "B")})
    ),
    "fresh-key-with-padded-kid": lambda e: e.mint(
        ECKey.generate_key("P-256", {"kid": e.kid + " "})
    ),
    "kid-of-the-idp-key-claiming-our-issuer": lambda e: e.mint(IDP_KEY),
    "our-key-claiming-the-idp-issuer": lambda e: e.mint(iss=IDP, azp="ude"),
    "kid-of-a-partners-assertion-key": lambda e: e.mint(e.client_key),
    "jku-to-attacker-jwks": lambda e: e.mint(ATTACKER_KEY, header={"jku": f"{ATTACKER}/jwks"}),
    "x5u-to-attacker-cert": lambda e: e.mint(ATTACKER_KEY, header={"x5u": f"{ATTACKER}/x5u"}),
    "jwk-header-embedded-key": lambda e: e.mint(
        ATTACKER_KEY, header={"jwk": ATTACKER_KEY.as_dict(private=False)}
    ),
    "jwk-and-jku-headers-with-our-kid": lambda e: e.mint(
        ATTACKER_KEY,
        header={
            "kid": e.kid,
            "jku": f"{ATTACKER}/jwks",
            "jwk": {**ATTACKER_KEY.as_dict(private=False), "kid": e.kid},
        },
    ),
    # --- other JWTs presented as access tokens
    "client-assertion-as-access-token": lambda e: e.assertion(),
    "client-assertion-typed-at-jwt": lambda e: e.assertion(
        header={"typ": "at+jwt"}, aud=e.audience, partner_id="ude", scope=ALL_SCOPES
    ),
    "id-token-like": lambda e: e.mint(
        header={"typ": "JWT"}, aud=e.client_id, nonce="n-0S6_WzA2Mj", email="x@uni-due.de"
    ),
    "id-token-like-typed-at-jwt": lambda e: e.mint(aud=e.client_id, nonce="n-0S6_WzA2Mj"),
    # --- the real token, tampered with or broken
    "deactivated-partner": lambda e: e.deactivate_ude(),
    "tampered-partner-id": lambda e: e.tampered(partner_id="amt"),
    "tampered-scope": lambda e: e.tampered(scope=ALL_SCOPES + " admin"),
    "tampered-exp": lambda e: e.tampered(exp=int(time.time()) + 86400),
    "signature-of-another-real-token": lambda e: ".".join(
        [*e.real.split(".")[:2], e.partners.token(e.client, "ude").split(".")[2]]
    ),
    "signature-truncated": lambda e: e.real[:-4],
    "signature-removed": lambda e: e.real.rsplit(".", 1)[0] + ".",
    "two-segments": lambda e: e.real.rsplit(".", 1)[0],
    "header-only": lambda e: e.real.split(".")[0],
    "dots-only": lambda e: "..",
    "garbage": lambda e: "garbage",
    "jwe-shaped": lambda e: "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d",
    "not-base64url": lambda e: "!!!.@@@.###",
    "header-a-json-array": lambda e: e.raw([]),  # type: ignore[arg-type]
    "payload-a-json-array": lambda e: e.raw(e.header(), claims=b"[]"),
    "payload-not-json": lambda e: e.raw(e.header(), claims=b"\xff\xfe not json"),
    "16-kib-token": lambda e: e.raw(e.header(), claims={"pad": "x" * 16384}),
}

#: Header values of the wrong JSON type (they once crashed the validator with a TypeError).
MALFORMED_HEADERS: dict[str, Attack] = {
    "alg-as-list": lambda e: e.raw(e.header(alg=["ES256"])),
    "alg-as-object": lambda e: e.raw(e.header(alg={"name": "ES256"})),
    "kid-as-list": lambda e: e.raw(e.header(kid=["x"])),
    "typ-as-number": lambda e: e.raw(e.header(typ=1)),
}


@pytest.mark.parametrize("attack", list(ATTACKS.values()), ids=list(ATTACKS))
def test_forged_access_token_is_refused(env: Env, attack: Attack) -> None:
    assert refusals(env, f"Bearer {attack(env)}") == []


@pytest.mark.parametrize("attack", list(MALFORMED_HEADERS.values()), ids=list(MALFORMED_HEADERS))
def test_malformed_header_types_are_refused_not_crashed(env: Env, attack: Attack) -> None:
    assert refusals(env, f"Bearer {attack(env)}") == []


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dWRlOnNlY3JldA==",
        "Token {real}",
        "{real}",
        "Bearer {real} {real}",
        "Bearer {real}\x00",
    ],
    ids=lambda a: repr(a),
)
def test_missing_or_misshapen_authorization_header_is_refused(
    env: Env, authorization: str | None
) -> None:
    value = authorization.format(real=env.real) if authorization is not None else None
    assert refusals(env, value) == []


def test_the_real_token_in_a_cookie_or_query_does_not_authenticate(env: Env) -> None:
    ref = env.world.referrals[0]
    for kwargs in (
        {"params": {"access_token": env.real}},
        {"headers": {"Cookie": f"access_token={env.real}"}},
    ):
        assert_problem(env.client.get(f"/v1/referrals/{ref.id}", **kwargs), 401)


def test_the_controls_are_accepted(env: Env) -> None:
    """Without these, a refusal above could come from a broken setup rather than the check."""
    ref = env.world.referrals[0]
    for token in (
        env.real,
        env.mint(),
        env.mint(IDP_KEY, iss=IDP, azp="ude", client_id=None, partner_id=None),
    ):
        r = env.client.get(f"/v1/referrals/{ref.id}", headers=bearer(token))
        assert r.status_code == 200, r.text
    assert set(env.fetched) == {IDP_JWKS}
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": env.assertion(),
    }
    assert env.client.post("/oauth/token", data=form).status_code == 200


# ---------------------------------------------------------------------- the token endpoint


def token_refused(r: Any) -> dict[str, Any]:
    """A token endpoint refusal: 400 or 401, an RFC 6749 §5.2 error document."""
    assert r.status_code in (400, 401), r.text
    assert r.headers["content-type"] == "application/json"
    assert r.headers["cache-control"] == "no-store"
    doc = dict(r.json())
    assert doc.get("error") in (
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "invalid_scope",
        "unauthorized_client",
        "unsupported_grant_type",
    ), doc
    return doc


def assertion_form(assertion: str, **extra: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        **extra,
    }


def test_a_replayed_client_assertion_is_refused(env: Env) -> None:
    form = assertion_form(env.assertion())
    assert env.client.post("/oauth/token", data=form).status_code == 200
    doc = token_refused(env.client.post("/oauth/token", data=form))
    assert "replayed" in doc["error_description"]


ASSERTION_ATTACKS: dict[str, Callable[[Env], dict[str, str]]] = {
    "alg-none": lambda e: assertion_form(
        e.raw(
            {"alg": "none", "kid": e.client_key.kid},
            {
                "iss": e.jwt_client_id,
                "sub": e.jwt_client_id,
                "aud": e.token_url,
                "exp": int(time.time()) + 30,
                "jti": str(uuid.uuid4()),
            },
        )
    ),
    "HS256-with-the-clients-public-key": lambda e: assertion_form(
        e.raw(
            {"alg": "HS256", "kid": e.client_key.kid},
            {
                "iss": e.jwt_client_id,
                "sub": e.jwt_client_id,
                "aud": e.token_url,
                "exp": int(time.time()) + 30,
                "jti": str(uuid.uuid4()),
            },
            secret=json.dumps(e.client_key.as_dict(private=False)).encode(),
        )
    ),
    "signed-by-an-attacker-with-the-clients-kid": lambda e: assertion_form(
        e.assertion(ECKey.generate_key("P-256", {"kid": e.client_key.kid}))
    ),
    "iss-differs-from-sub": lambda e: assertion_form(e.assertion(iss=e.client_id)),
    "another-clients-id": lambda e: assertion_form(e.assertion(iss=e.client_id, sub=e.client_id)),
    "client-id-parameter-mismatch": lambda e: assertion_form(e.assertion(), client_id=e.client_id),
    "wrong-audience": lambda e: assertion_form(e.assertion(aud="https://other.example/token")),
    "expired": lambda e: assertion_form(
        e.assertion(iat=int(time.time()) - 600, exp=int(time.time()) - 300)
    ),
    "lifetime-too-long": lambda e: assertion_form(e.assertion(exp=int(time.time()) + 3600)),
    "jti-missing": lambda e: assertion_form(e.assertion(jti=None)),
    "wrong-assertion-type": lambda e: {
        **assertion_form(e.assertion()),
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
    },
    "access-token-as-assertion": lambda e: assertion_form(e.real),
    "garbage-assertion": lambda e: assertion_form("garbage"),
    "assertion-and-basic-at-once": lambda e: assertion_form(e.assertion()),
}


@pytest.mark.parametrize("attack", list(ASSERTION_ATTACKS.values()), ids=list(ASSERTION_ATTACKS))
def test_a_forged_client_assertion_gets_no_token(env: Env, attack: Any) -> None:
    form = attack(env)
    auth = None
    if attack is ASSERTION_ATTACKS["assertion-and-basic-at-once"]:
        auth = (env.client_id, env.partners.creds["ude"]["client_secret"])
    before = snapshot(env.hub)
    token_refused(env.client.post("/oauth/token", data=form, auth=auth))
    assert changes(before, snapshot(env.hub)) == {}


def test_an_assertion_with_a_nested_audience_is_refused_not_crashed(env: Env) -> None:
    """A registered partner's own key signs an assertion whose aud is a list of lists."""
    r = env.client.post("/oauth/token", data=assertion_form(env.assertion(aud=[[env.token_url]])))
    token_refused(r)


def test_scope_escalation_at_the_token_endpoint_is_refused(env: Env) -> None:
    """A client allowed only referrals:read asks for more; nothing forged, only requested."""
    with unit_of_work(env.hub.session_factory) as session:
        limited = add_client(
            session,
            partner_id="amt",
            scopes=["referrals:read"],
            auth_method="client_secret_basic",
            jwks=None,
        )
    auth = (limited["client_id"], limited["client_secret"])
    for scope in (
        "referrals:read referrals:write",
        "status:write",
        "admin",
        "referrals:read\tconsent:write",
        "referrals:*",
        "REFERRALS:WRITE",
    ):
        form = {"grant_type": "client_credentials", "scope": scope}
        doc = token_refused(env.client.post("/oauth/token", data=form, auth=auth))
        assert doc["error"] == "invalid_scope", (scope, doc)
    repeated = "grant_type=client_credentials&scope=referrals:read&scope=referrals:write"
    token_refused(
        env.client.post(
            "/oauth/token",
            content=repeated,
            auth=auth,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    )
    # No scope asked: the default is what the client is allowed, and nothing more works.
    granted = env.client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=auth)
    assert granted.json()["scope"] == "referrals:read"
    headers = bearer(granted.json()["access_token"])
    assert env.client.get("/v1/referrals", headers=headers).status_code == 200
    student = {**partner_requests(env.world)[("POST", "/v1/referrals")][1]}
    r = env.client.post("/v1/referrals", json=student, headers=headers)
    assert assert_problem(r, 403)["error"] == "insufficient_scope"
    # A scope claimed inside a client assertion is not a request for more.
    r = env.client.post("/oauth/token", data=assertion_form(env.assertion(scope=ALL_SCOPES)))
    assert r.status_code == 200 and r.json()["scope"] == "referrals:read", r.text


def test_revoked_clients_and_inactive_partners_get_no_token(env: Env) -> None:
    basic = (env.client_id, env.partners.creds["ude"]["client_secret"])
    with unit_of_work(env.hub.session_factory) as session:
        client = session.get(OAuthClient, env.client_id)
        assert client is not None
        client.revoked_at = utcnow()
    form = {"grant_type": "client_credentials"}
    token_refused(env.client.post("/oauth/token", data=form, auth=basic))
    env.deactivate_ude()
    token_refused(env.client.post("/oauth/token", data=assertion_form(env.assertion())))
