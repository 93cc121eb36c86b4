"""Access tokens in the JWT profile of RFC 9068: issuing ours, validating ours and others'.

One module on purpose: issuing and validating share the rules (typ, algorithms, audience,
lifetimes, key selection), so a reviewer sees both sides of each rule together.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import Key, KeySet
from sqlalchemy.orm import Session, sessionmaker

from hub.auth.cache import AuthCache, may_load
from hub.auth.keys import ALG, SigningKeys
from hub.errors import InsufficientScope, Unauthenticated
from hub.partners.models import OAuthClient
from hub.settings import ExternalIssuer, Settings

log = logging.getLogger(__name__)

# RFC 9068 §4: the typ header keeps ID tokens and other JWTs from passing as access tokens.
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
LOCAL_RELOAD_SECONDS = 1.0
EXTERNAL_RELOAD_SECONDS = 60.0
JWKS_MAX_AGE_SECONDS = 300.0
# Our own keys come from the database: reread often, so a retired key stops verifying soon.
LOCAL_MAX_AGE_SECONDS = 30.0
JWKS_FETCH_TIMEOUT_SECONDS = 5.0


def issue_access_token(
    *,
    session: Session,
    keys: SigningKeys,
    settings: Settings,
    client: OAuthClient,
    scopes: frozenset[str],
    now: datetime | None = None,
    jkt: str | None = None,
) -> tuple[str, int]:
    """A signed access token for the client and its lifetime in seconds.

    With ``jkt`` (the thumbprint of a DPoP proof key) the token is bound to that key
    (RFC 9449 §6: ``cnf.jkt``) and is worthless without it.
    """
    key = keys.current(session)
    issued_at = int(now.timestamp()) if now else int(time.time())
    ttl = settings.access_token_ttl_seconds
    claims = {
        "iss": settings.resolved_issuer,
        "sub": client.client_id,
        "aud": settings.api_audience,
        "client_id": client.client_id,
        "partner_id": client.partner_id,
        "scope": " ".join(sorted(scopes)),
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + ttl,
        "jti": str(uuid.uuid4()),
    }
    if jkt is not None:
        claims["cnf"] = {"jkt": jkt}
    header = {"alg": ALG, "typ": "at+jwt", "kid": key.kid}
    return jwt.encode(header, claims, key, algorithms=[ALG]), ttl


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of the API, as stated by a validated access token."""

    partner_id: str
    client_id: str
    scopes: frozenset[str]
    token_id: str
    issuer: str
    # The RFC 7638 thumbprint a DPoP-bound token is bound to (its cnf.jkt); None for bearer.
    jkt: str | None = None

    def require(self, scope: str) -> None:
        """Raise InsufficientScope unless the token grants the scope (RFC 6750 §3.1)."""
        if scope not in self.scopes:
            raise InsufficientScope(
                f"token lacks scope {scope}", error="insufficient_scope", scope=scope
            )


def invalid_token(reason: str) -> Unauthenticated:
    """The RFC 6750 §3.1 ``invalid_token`` failure, with its WWW-Authenticate challenge."""
    challenge = f'Bearer error="invalid_token", error_description="{reason}"'
    return Unauthenticated(reason, error="invalid_token", www_authenticate=challenge)


class _KeyCache:
    """A JWKS from a loader; reloaded when stale or on an unknown kid, but rate-limited."""

    def __init__(
        self,
        load: Callable[[], dict[str, Any]],
        min_reload: float,
        max_age: float = JWKS_MAX_AGE_SECONDS,
    ) -> None:
        self._load = load
        self._min_reload = min_reload
        self._max_age = max_age
        self._lock = threading.Lock()
        self._keys: KeySet = KeySet([])
        self._loaded_at: float | None = None

    def find(self, kid: str) -> Key | None:
        """The key with this kid, or None; an unknown kid cannot force a reload storm."""
        with self._lock:
            now = time.monotonic()
            age = None if self._loaded_at is None else now - self._loaded_at
            key = self._lookup(kid) if age is not None and age < self._max_age else None
            if key is None and (age is None or age >= self._min_reload):
                self._loaded_at = now
                self._keys = _signing_keys(self._load())
                key = self._lookup(kid)
            return key

    def forget(self) -> None:
        """Reload on the next look-up, whatever the rate limit says (our keys changed)."""
        with self._lock:
            self._loaded_at = None

    def _lookup(self, kid: str) -> Key | None:
        return next((k for k in self._keys.keys if k.kid == kid), None)


def _signing_keys(jwks: dict[str, Any]) -> KeySet:
    keys = [k for k in jwks.get("keys", []) if isinstance(k, dict) and k.get("use") != "enc"]
    # An empty set is a valid answer (every key retired): it means "unknown kid", not an outage.
    return KeySet.import_key_set({"keys": keys}) if keys else KeySet([])


@dataclass(frozen=True)
class _Trust:
    """What we accept from one issuer: algorithms, keys, audience and the partner claim."""

    issuer: str
    algorithms: frozenset[str]
    keys: _KeyCache
    audience: str
    partner_claim: str
    client_claims: tuple[str, ...]
    # The partners an external issuer may name; None for the hub itself (its own clients).
    partners: frozenset[str] | None = None


class TokenValidator:
    """Validates bearer tokens from the hub and from configured external issuers."""

    def __init__(
        self,
        *,
        settings: Settings,
        local_jwks: Callable[[], dict[str, Any]],
        partner_active: Callable[[str], bool],
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        client_active: Callable[[str], bool] | None = None,
        cache: AuthCache | None = None,
        partner_scopes: Callable[[str], frozenset[str]] | None = None,
    ) -> None:
        self._skew = settings.clock_skew_seconds
        self.cache = cache
        self._keys_seen = 0
        self._partner_active = partner_active
        # Our own tokens name one of our OAuth clients: a revoked client loses them at once.
        self._client_active = client_active
        # What a partner is registered for bounds what an external issuer may grant it;
        # without a source of registrations an external token grants nothing.
        self._partner_scopes = partner_scopes or (lambda partner_id: frozenset())
        self._clock = clock
        self._owns_http = http is None
        self._http = http or httpx.Client(timeout=JWKS_FETCH_TIMEOUT_SECONDS)
        local = _Trust(
            issuer=settings.resolved_issuer,
            algorithms=frozenset({ALG}),  # pinned: never trust the header to pick for us
            keys=_KeyCache(local_jwks, LOCAL_RELOAD_SECONDS, LOCAL_MAX_AGE_SECONDS),
            audience=settings.api_audience,
            partner_claim="partner_id",
            client_claims=("client_id",),
        )
        self._trusts = {t.issuer: self._external(t, settings) for t in settings.external_issuers}
        self._trusts[local.issuer] = local
        self._local = local

    def _external(self, issuer: ExternalIssuer, settings: Settings) -> _Trust:
        if not issuer.partners:
            log.warning("auth.external_issuer_without_partners", extra={"issuer": issuer.issuer})
        return _Trust(
            issuer=issuer.issuer,
            # "none" and HMAC would let anyone who reads the public JWKS mint tokens.
            algorithms=frozenset(
                a for a in issuer.algorithms if a != "none" and not a.startswith("HS")
            ),
            keys=_KeyCache(
                partial(_fetch_jwks, self._http, issuer.jwks_url), EXTERNAL_RELOAD_SECONDS
            ),
            audience=issuer.audience or settings.api_audience,
            partner_claim=issuer.partner_claim,
            client_claims=("client_id", "azp", "sub"),
            partners=frozenset(issuer.partners),
        )

    def close(self) -> None:
        """Close the HTTP client if the validator created it."""
        if self._owns_http:
            self._http.close()
        if self.cache is not None:
            self.cache.close()

    def validate(self, token: str) -> Principal:
        """The Principal of a valid token; raises Unauthenticated naming the reason.

        The partner and the client are checked on every call; with a cache, the signature and
        claims only on a token's first use (and again once the cache let it go).
        """
        principal = self.cache.token(token) if self.cache is not None else None
        if principal is None:
            may_load()  # a first use is verified in a thread: it may fetch an issuer's JWKS
            principal = self._verified(token)
        if not self._partner_active(principal.partner_id):
            raise invalid_token("token partner unknown or inactive")
        if principal.issuer != self._local.issuer:
            # Our own tokens carry only scopes the client was registered for (server.py);
            # another issuer's are cut down to what the partner is registered for here.
            granted = principal.scopes & self._partner_scopes(principal.partner_id)
            return replace(principal, scopes=granted)
        if self._client_active is not None and not self._client_active(principal.client_id):
            raise invalid_token("token client revoked")
        return principal

    def _verified(self, token: str) -> Principal:
        generation = self.cache.generation() if self.cache is not None else 0
        if self.cache is not None and self.cache.keys_changed != self._keys_seen:
            # A key retired at once (compromised) must not verify from the JWKS we hold.
            self._keys_seen = self.cache.keys_changed
            self._local.keys.forget()
        signed = _parse(token)
        header, claims = signed.headers(), _claims(signed)
        _check_type(header)
        issuer = claims.get("iss")
        trust = self._trusts.get(issuer) if isinstance(issuer, str) else None
        if trust is None:
            raise invalid_token("token issuer not trusted")
        _verify(signed, trust, header)
        _check_claims(claims, trust.audience, self._clock(), self._skew)
        principal = _principal(claims, trust)
        if trust.partners is not None and principal.partner_id not in trust.partners:
            # The partner id is the issuer's claim: not echoed into a header or log line.
            raise invalid_token("token issuer may not speak for the partner it names")
        if self.cache is not None:
            # Until exp, not exp + skew: the cache never accepts what a fresh check would not.
            exp = _number(claims, "exp")
            key_age = LOCAL_MAX_AGE_SECONDS if trust is self._local else JWKS_MAX_AGE_SECONDS
            self.cache.keep_token(token, principal, exp=exp, generation=generation, key_age=key_age)
        return principal


def _parse(token: str) -> jws.CompactSignature:
    try:
        return jws.extract_compact(token.encode("ascii"))
    except (JoseError, ValueError, TypeError) as exc:
        raise invalid_token("token malformed") from exc


def _claims(signed: jws.CompactSignature) -> dict[str, Any]:
    try:
        claims = json.loads(signed.payload)
    except ValueError as exc:
        raise invalid_token("token malformed") from exc
    if not isinstance(claims, dict):
        raise invalid_token("token malformed")
    return claims


def _check_type(header: dict[str, Any]) -> None:
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
        raise invalid_token("token type is not at+jwt")


def _verify(signed: jws.CompactSignature, trust: _Trust, header: dict[str, Any]) -> None:
    # The key comes only from the issuer's JWKS: jku, x5u and jwk headers are never followed.
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in trust.algorithms:
        raise invalid_token("token algorithm not allowed")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise invalid_token("token has no key id")
    try:
        key = trust.keys.find(kid)
    except (httpx.HTTPError, JoseError, ValueError) as exc:
        raise invalid_token("token issuer keys unavailable") from exc
    if key is None:
        raise invalid_token("token key id unknown")
    try:
        valid = jws.validate_compact(signed, key, algorithms=[alg])
    except (JoseError, ValueError) as exc:
        raise invalid_token("token signature invalid") from exc
    if not valid:
        raise invalid_token("token signature invalid")


def _check_claims(claims: dict[str, Any], audience: str, now: float, skew: int) -> None:
    for name in ("exp", "iat", "jti"):
        if name not in claims:
            raise invalid_token(f"token missing {name}")
    if not _audience_matches(claims.get("aud"), audience):
        raise invalid_token("token audience mismatch")
    if now >= _number(claims, "exp") + skew:
        raise invalid_token("token expired")
    if "nbf" in claims and _number(claims, "nbf") > now + skew:
        raise invalid_token("token not yet valid")
    if _number(claims, "iat") > now + skew:
        raise invalid_token("token issued in the future")


def _number(claims: dict[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid_token(f"token {name} invalid")
    return float(value)


def _audience_matches(aud: object, expected: str) -> bool:
    # RFC 7519 §4.1.3: aud is a string or an array of strings.
    return aud == expected or (isinstance(aud, list) and expected in aud)


def _principal(claims: dict[str, Any], trust: _Trust) -> Principal:
    client_id = next((claims[c] for c in trust.client_claims if claims.get(c)), None)
    return Principal(
        partner_id=_text(claims.get(trust.partner_claim), trust.partner_claim),
        client_id=_text(client_id, trust.client_claims[0]),
        scopes=_scopes(claims),
        token_id=_text(claims.get("jti"), "jti"),
        issuer=trust.issuer,
        jkt=_confirmation(claims),
    )


def _confirmation(claims: dict[str, Any]) -> str | None:
    # RFC 7800 / RFC 9449 §6: only the DPoP key binding can be checked here (no mTLS).
    cnf = claims.get("cnf")
    if cnf is None:
        return None
    if not isinstance(cnf, dict) or set(cnf) != {"jkt"}:
        raise invalid_token("token confirmation method unsupported")
    return _text(cnf["jkt"], "cnf.jkt")


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise invalid_token(f"token missing {name}")
    return value


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    scope = claims.get("scope")
    if isinstance(scope, str):
        return frozenset(scope.split())
    scp = claims.get("scp")
    if isinstance(scp, str):
        return frozenset(scp.split())
    if isinstance(scp, list):
        return frozenset(s for s in scp if isinstance(s, str))
    return frozenset()


def _fetch_jwks(http: httpx.Client, url: str) -> dict[str, Any]:
    # No redirects: the configured URL is the trust anchor, not wherever it points to.
    response = http.get(url, timeout=JWKS_FETCH_TIMEOUT_SECONDS, follow_redirects=False)
    if response.status_code != 200:
        raise ValueError(f"JWKS fetch answered {response.status_code}")
    data = response.json()
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError("JWKS document has no keys")
    return data


def build_token_validator(
    *,
    settings: Settings,
    session_factory: sessionmaker[Session],
    signing_keys: SigningKeys,
    http: httpx.Client | None = None,
    clock: Callable[[], float] = time.time,
) -> TokenValidator:
    """A validator reading our keys from the database, partners and clients through a cache."""

    def local_jwks() -> dict[str, Any]:
        with session_factory() as session:
            return signing_keys.public_jwks(session)

    cache = AuthCache(
        session_factory=session_factory,
        unnotified_seconds=settings.auth_cache_seconds,
        clock=clock,
        # Looked up at call time, like the key caches' clock here, so one clock rules both.
        monotonic=lambda: time.monotonic(),
    )
    cache.listen(_database_url(session_factory))

    def partner_active(partner_id: str) -> bool:
        partner = cache.partner(partner_id)
        return partner is not None and partner.active

    return TokenValidator(
        settings=settings,
        local_jwks=local_jwks,
        partner_active=partner_active,
        http=http,
        clock=clock,
        client_active=cache.client_active,
        cache=cache,
        partner_scopes=cache.partner_scopes,
    )


def _database_url(session_factory: sessionmaker[Session]) -> str:
    bind = session_factory.kw.get("bind")
    url = getattr(bind, "url", None)
    return url.render_as_string(hide_password=False) if url is not None else ""
