"""Bearer-token validation: our own tokens, attacks on them, and a trusted external IdP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

import hub.auth.models  # noqa: F401  (registers the tables)
from hub.auth.cache import AuthCache
from hub.auth.deps import require_scope
from hub.auth.keys import SigningKeys
from hub.auth.routes import router
from hub.auth.secrets import hash_secret
from hub.auth.tokens import Principal, TokenValidator, build_token_validator
from hub.db import Base, make_engine, make_session_factory, unit_of_work
from hub.errors import HubError, InsufficientScope, Unauthenticated
from hub.partners.models import OAuthClient, Partner
from hub.partners.service import deactivate_partner
from hub.settings import ExternalIssuer, Settings

ISSUER = "https://hub.test"
IDP = "https://idp.duisburg.test"
AUDIENCE = "urn:talenthub:api:v1"
OURS = ECKey.generate_key("P-256", parameters={"alg": "ES256", "use": "sig"}, auto_kid=True)
IDP_KEY = RSAKey.generate_key(2048, parameters={"use": "sig"}, auto_kid=True)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "c1",
        "aud": AUDIENCE,
        "client_id": "c1",
        "partner_id": "ude",
    }
    body.update(scope="referrals:read", iat=now, nbf=now, exp=now + 600, jti=str(uuid.uuid4()))
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def mint(
    key: Any = OURS, alg: str = "ES256", header: dict[str, Any] | None = None, **kw: Any
) -> str:
    head = {"alg": alg, "typ": "at+jwt", "kid": key.kid, **(header or {})}
    return jwt.encode({k: v for k, v in head.items() if v is not None}, claims(**kw), key, [alg])


def unsigned(alg: str, secret: bytes | None = None) -> str:
    head = b64(json.dumps({"alg": alg, "typ": "at+jwt", "kid": OURS.kid}).encode())
    signing_input = f"{head}.{b64(json.dumps(claims()).encode())}"
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest() if secret else b""
    return f"{signing_input}.{b64(sig)}"


class IdP:
    """A fake external identity provider serving its JWKS."""

    def __init__(self) -> None:
        self.fetches = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == f"{IDP}/jwks"
        self.fetches += 1
        return httpx.Response(200, json={"keys": [IDP_KEY.as_dict(private=False)]})


@pytest.fixture
def idp() -> IdP:
    return IdP()


@pytest.fixture
def validator(idp: IdP, tmp_path: Any) -> TokenValidator:
    issuers = [
        ExternalIssuer(
            issuer=IDP,
            jwks_url=f"{IDP}/jwks",
            algorithms=["RS256", "HS256"],
            partners=["ude", "ude-lab", "gone"],
        )
    ]
    settings = Settings(data_dir=tmp_path, issuer=ISSUER, external_issuers=issuers)
    return TokenValidator(
        settings=settings,
        local_jwks=lambda: {"keys": [OURS.as_dict(private=False)]},
        partner_active=lambda partner_id: partner_id in ("ude", "ude-lab", "amt"),
        http=httpx.Client(transport=httpx.MockTransport(idp.handle)),
        partner_scopes=REGISTERED.__getitem__,
    )


#: The scopes each partner is registered for (its OAuth clients' scopes).
REGISTERED = {
    "ude": frozenset({"referrals:read", "referrals:write"}),
    "ude-lab": frozenset({"referrals:read"}),
    "amt": frozenset({"referrals:read", "inbox:read"}),
}


def rejected(validator: TokenValidator, token: str) -> str:
    with pytest.raises(Unauthenticated) as info:
        validator.validate(token)
    assert info.value.extensions["error"] == "invalid_token"
    return info.value.detail


def test_valid_token_gives_the_principal(validator: TokenValidator) -> None:
    token = mint(jti="t-1", scope="referrals:read status:write")
    assert validator.validate(token) == Principal(
        partner_id="ude",
        client_id="c1",
        scopes=frozenset({"referrals:read", "status:write"}),
        token_id="t-1",
        issuer=ISSUER,
    )


def test_media_type_form_of_typ_is_accepted(validator: TokenValidator) -> None:
    assert validator.validate(mint(header={"typ": "application/AT+JWT"})).client_id == "c1"


def test_principal_require_names_the_missing_scope(validator: TokenValidator) -> None:
    with pytest.raises(InsufficientScope, match="status:write"):
        validator.validate(mint()).require("status:write")


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda: unsigned("none"), "algorithm not allowed"),
        (lambda: unsigned("HS256", OURS.as_pem(private=False)), "algorithm not allowed"),
        (lambda: unsigned("HS256", json.dumps(OURS.as_dict()).encode()), "algorithm not allowed"),
        (lambda: mint(ECKey.generate_key("P-256", {"kid": str(OURS.kid)})), "signature invalid"),
        (lambda: mint(ECKey.generate_key("P-256", auto_kid=True)), "key id unknown"),
        (lambda: mint(header={"kid": None}), "no key id"),
        (lambda: mint(iss="https://evil.test"), "issuer not trusted"),
        (lambda: mint(aud="urn:other:api"), "audience mismatch"),
        (lambda: mint(header={"typ": "JWT"}), "type is not at+jwt"),
        (lambda: mint(header={"typ": None}), "type is not at+jwt"),
        (lambda: mint(exp=int(time.time()) - 60), "expired"),
        (lambda: mint(nbf=int(time.time()) + 120), "not yet valid"),
        (lambda: mint(iat=int(time.time()) + 120), "issued in the future"),
        (lambda: mint(jti=None), "missing jti"),
        (lambda: mint(exp=None), "missing exp"),
        (lambda: mint(iat=None), "missing iat"),
        (lambda: mint(client_id=None), "missing client_id"),
        (lambda: mint(partner_id="gone"), "partner unknown or inactive"),
        (lambda: "not.a.jwt", "malformed"),
    ],
)
def test_bad_token_is_rejected(validator: TokenValidator, token: Any, reason: str) -> None:
    assert reason in rejected(validator, token())


def test_expiry_within_clock_skew_is_tolerated(validator: TokenValidator) -> None:
    assert validator.validate(mint(exp=int(time.time()) - 10)).client_id == "c1"


def test_embedded_and_remote_keys_in_the_header_are_ignored(
    validator: TokenValidator, idp: IdP
) -> None:
    attacker = ECKey.generate_key("P-256", {"kid": str(OURS.kid)})
    header = {"jku": f"{IDP}/jwks", "x5u": f"{IDP}/x5u", "jwk": attacker.as_dict(private=False)}
    assert "signature invalid" in rejected(validator, mint(attacker, header=header))
    assert idp.fetches == 0


def idp_token(key: Any = IDP_KEY, **kw: Any) -> str:
    body: dict[str, Any] = {
        "iss": IDP,
        "azp": "ude",
        "sub": "svc-ude",
        "scp": ["referrals:read"],
        "scope": None,
    }
    body.update(client_id=None, partner_id=None, **kw)
    return mint(key, "RS256", **body)


def test_external_issuer_token_maps_azp_to_partner(validator: TokenValidator, idp: IdP) -> None:
    principal = validator.validate(idp_token(jti="x-1"))
    assert principal == Principal("ude", "ude", frozenset({"referrals:read"}), "x-1", IDP)
    validator.validate(idp_token())
    assert idp.fetches == 1


def test_external_token_of_unknown_partner_is_rejected(validator: TokenValidator) -> None:
    assert "partner unknown" in rejected(validator, idp_token(azp="gone"))
    assert "may not speak for" in rejected(validator, idp_token(azp="nobody"))


def test_external_issuer_may_name_only_its_partners(validator: TokenValidator) -> None:
    # amt is an active partner, but the IdP is trusted for ude and ude-lab only.
    assert "may not speak for the partner" in rejected(validator, idp_token(azp="amt"))
    assert validator.validate(idp_token(azp="ude-lab")).partner_id == "ude-lab"


def test_external_token_scopes_are_bounded_by_the_partners_registration(
    validator: TokenValidator,
) -> None:
    token = idp_token(azp="ude-lab", scp=["referrals:read", "consent:read", "inbox:read"])
    principal = validator.validate(token)
    assert principal.scopes == {"referrals:read"}
    with pytest.raises(InsufficientScope, match="consent:read"):
        principal.require("consent:read")


def test_issuer_without_partners_speaks_for_none(idp: IdP, tmp_path: Any) -> None:
    issuers = [ExternalIssuer(issuer=IDP, jwks_url=f"{IDP}/jwks", algorithms=["RS256"])]
    validator = TokenValidator(
        settings=Settings(data_dir=tmp_path, issuer=ISSUER, external_issuers=issuers),
        local_jwks=lambda: {"keys": []},
        partner_active=lambda partner_id: True,
        http=httpx.Client(transport=httpx.MockTransport(idp.handle)),
        partner_scopes=REGISTERED.__getitem__,
    )
    assert "may not speak for" in rejected(validator, idp_token())


def test_external_issuer_cannot_use_hmac(validator: TokenValidator) -> None:
    assert "algorithm not allowed" in rejected(validator, unsigned_idp_hs256())


def unsigned_idp_hs256() -> str:
    head = b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": IDP_KEY.kid}).encode())
    body = b64(json.dumps(claims(iss=IDP, azp="ude")).encode())
    sig = hmac.new(IDP_KEY.as_pem(private=False), f"{head}.{body}".encode(), hashlib.sha256)
    return f"{head}.{body}.{b64(sig.digest())}"


def test_unknown_kid_refetches_at_most_once_a_minute(validator: TokenValidator, idp: IdP) -> None:
    validator.validate(idp_token())
    stranger = RSAKey.generate_key(2048, auto_kid=True)
    for _ in range(3):
        assert "key id unknown" in rejected(validator, idp_token(stranger))
    assert idp.fetches == 1


def test_our_token_is_not_accepted_under_the_idp_name(validator: TokenValidator) -> None:
    assert "algorithm not allowed" in rejected(validator, mint(iss=IDP, azp="ude"))


@pytest.fixture
def api(tmp_path: Any) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, issuer=ISSUER)
    engine = make_engine(settings.resolved_database_url)
    Base.metadata.create_all(engine)
    factory = make_session_factory(engine)
    with unit_of_work(factory) as s:
        s.add(Partner(id="ude", name="UDE", kind="university"))
        s.add(
            OAuthClient(
                client_id="c1",
                partner_id="ude",
                auth_method="client_secret_basic",
                secret_hash=hash_secret("s3cret"),
                scopes="referrals:read",
            )
        )
    app = FastAPI()
    app.include_router(router)
    app.state.settings, app.state.session_factory = settings, factory
    app.state.signing_keys = SigningKeys()
    app.state.token_validator = build_token_validator(
        settings=settings, session_factory=factory, signing_keys=app.state.signing_keys
    )

    @app.exception_handler(HubError)
    async def problem(request: Request, exc: HubError) -> JSONResponse:
        return JSONResponse(exc.to_problem(), status_code=exc.status)

    @app.get("/read")
    def read(p: Principal = Depends(require_scope("referrals:read"))) -> dict[str, str]:
        return {"partner": p.partner_id}

    @app.get("/write")
    def write(p: Principal = Depends(require_scope("referrals:write"))) -> dict[str, str]:
        return {"partner": p.partner_id}

    with TestClient(app, base_url=ISSUER) as client:
        yield client
    engine.dispose()


def test_api_accepts_a_token_from_the_token_endpoint(api: TestClient) -> None:
    form = {"grant_type": "client_credentials"}
    token = api.post("/oauth/token", data=form, auth=("c1", "s3cret")).json()["access_token"]
    bearer = {"authorization": f"Bearer {token}"}
    assert api.get("/read", headers=bearer).json() == {"partner": "ude"}
    r = api.get("/write", headers=bearer)
    assert r.status_code == 403
    assert r.json()["error"] == "insufficient_scope"


def test_api_without_bearer_token_is_401(api: TestClient) -> None:
    r = api.get("/read")
    assert r.status_code == 401
    assert r.json()["detail"] == "missing bearer token"
    assert r.json()["www_authenticate"].startswith("Bearer")
    assert api.get("/read", headers={"authorization": "Bearer x.y.z"}).status_code == 401


def test_inactive_partner_loses_access_at_once(api: TestClient) -> None:
    form = {"grant_type": "client_credentials"}
    token = api.post("/oauth/token", data=form, auth=("c1", "s3cret")).json()["access_token"]
    factory = api.app.state.session_factory  # type: ignore[attr-defined]
    assert api.get("/read", headers={"authorization": f"Bearer {token}"}).status_code == 200
    with unit_of_work(factory) as s:
        deactivate_partner(s, partner_id="ude")
    r = api.get("/read", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert "partner" in r.json()["detail"]


# --- the gateway's cache of partners, clients and verified tokens -------------------------------


@pytest.fixture
def partners_db(tmp_path: Any) -> Iterator[Any]:
    engine = make_engine(f"sqlite:///{tmp_path / 'cache.db'}")
    Base.metadata.create_all(engine)
    factory = make_session_factory(engine)
    with unit_of_work(factory) as s:
        s.add(Partner(id="ude", name="UDE", kind="university"))
    yield factory
    engine.dispose()


def _set_active(factory: Any, active: bool) -> None:
    """Change the row behind the services' back: no drop, as plain SQL would."""
    with unit_of_work(factory) as s:
        s.get(Partner, "ude").active = active  # type: ignore[union-attr]


def test_without_change_notices_an_entry_is_trusted_for_the_short_bound(partners_db: Any) -> None:
    now = [100.0]
    cache = AuthCache(session_factory=partners_db, unnotified_seconds=1.0, monotonic=lambda: now[0])
    assert cache.partner("ude").active  # type: ignore[union-attr]
    _set_active(partners_db, False)
    now[0] += 0.9
    assert cache.partner("ude").active  # type: ignore[union-attr]
    now[0] += 0.2
    assert not cache.partner("ude").active  # type: ignore[union-attr]


def test_a_change_is_dropped_after_commit_and_kept_on_rollback(partners_db: Any) -> None:
    cache = AuthCache(session_factory=partners_db, unnotified_seconds=5.0)
    assert cache.partner("ude").active  # type: ignore[union-attr]
    with pytest.raises(RuntimeError), unit_of_work(partners_db) as s:
        deactivate_partner(s, partner_id="ude")
        raise RuntimeError("rolled back")
    assert cache.partner("ude").active  # type: ignore[union-attr]
    with unit_of_work(partners_db) as s:
        deactivate_partner(s, partner_id="ude")
        assert cache.partner("ude").active  # type: ignore[union-attr]  # not before commit
    assert not cache.partner("ude").active  # type: ignore[union-attr]


def test_a_load_that_overlaps_a_drop_is_not_kept(
    partners_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = AuthCache(session_factory=partners_db, unnotified_seconds=5.0)
    load = cache._load_partner
    loads: list[str] = []

    def racing(partner_id: str, session: Any) -> Any:
        stale = load(partner_id, session)  # read before the change committed ...
        _set_active(partners_db, False)
        cache.drop(partners=[partner_id])  # ... whose notice arrives before we store
        loads.append(partner_id)
        return stale

    monkeypatch.setattr(cache, "_load_partner", racing)
    assert cache.partner("ude").active  # type: ignore[union-attr]
    monkeypatch.setattr(cache, "_load_partner", load)
    assert not cache.partner("ude").active  # type: ignore[union-attr]
    assert loads == ["ude"]
