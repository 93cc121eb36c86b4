"""Staff login through the city's OpenID Connect provider (authorization code, PKCE, nonce).

The provider only says who someone is: the ID token's ``email`` must name an active staff
account that an administrator created (``hub staff add``); the hub creates neither accounts nor
roles from it. ``state``, ``nonce`` and the PKCE verifier travel in a short-lived cookie sealed
with AES-GCM under a key made per process, so a login that spans a restart simply fails and the
user starts again. Provider URLs are called with timeouts and without following redirects.

One module on purpose: the flow's checks (state, nonce, PKCE, issuer, audience, signature,
expiry) read top to bottom in the order a security review follows them.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.common.security import is_secure_transport
from authlib.integrations.httpx_client import OAuth2Client
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import Key, KeySet
from sqlalchemy import select

from connectors.egress import PRODUCTION, EgressPolicy, client_options
from hub.audit.service import record
from hub.db import unit_of_work, utcnow
from hub.errors import NotFound
from hub.settings import Settings
from hub.web import accounts
from hub.web.i18n import add_words
from hub.web.login import LOGIN_CSRF_COOKIE, safe_next, set_cookie
from hub.web.models import StaffAccount
from hub.web.pages import PREFIX, SESSION_COOKIE, render

router = APIRouter(prefix=PREFIX, include_in_schema=False)

DISCOVERY_PATH = "/.well-known/openid-configuration"
SCOPE = "openid email"
STATE_COOKIE = "hub_oidc"
#: How long the user may take at the provider before the login must be started again.
STATE_SECONDS = 600
HTTP_TIMEOUT = httpx.Timeout(5.0)
METADATA_MAX_AGE_SECONDS = 3600.0
JWKS_MAX_AGE_SECONDS = 300.0
#: An unknown key id reloads the JWKS at most this often (the provider may have rotated).
JWKS_MIN_RELOAD_SECONDS = 10.0
# Asymmetric only: "none" and HMAC would let anyone who reads the public JWKS mint tokens.
ALGORITHMS = ("ES256", "PS256", "RS256")
_SEAL_CONTEXT = b"hub staff oidc state v1"
_STATE_LOCK = threading.Lock()

add_words(
    {
        "oidc.login": ("Mit dem Stadt-Konto anmelden", "Log in with the city account"),
        "oidc.failed": (
            "Die Anmeldung mit dem Stadt-Konto ist abgelaufen oder ungültig."
            " Bitte versuchen Sie es noch einmal.",
            "The login with the city account expired or was invalid. Please try again.",
        ),
        "oidc.denied": (
            "Der Anmeldedienst der Stadt hat die Anmeldung nicht bestätigt.",
            "The city's login service did not confirm the login.",
        ),
        "oidc.unknown": (
            "Für dieses Stadt-Konto gibt es keinen aktiven Zugang zum Talent Hub."
            " Bitte wenden Sie sich an die Administration.",
            "There is no active Talent Hub account for this city account."
            " Please contact the administrators.",
        ),
        "oidc.unavailable": (
            "Der Anmeldedienst der Stadt ist gerade nicht erreichbar. Bitte versuchen Sie es"
            " später noch einmal oder melden Sie sich mit Ihrem Passwort an.",
            "The city's login service cannot be reached right now. Please try again later"
            " or log in with your password.",
        ),
    }
)


class LoginFailed(Exception):
    """A refused OIDC login: the reason for the audit trail, the words and status for the page."""

    def __init__(self, reason: str, *, message: str = "oidc.denied", status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message = message
        self.status = status


def unavailable(reason: str) -> LoginFailed:
    """The provider could not be reached or answered nonsense about itself."""
    return LoginFailed(reason, message="oidc.unavailable", status=503)


@dataclass(frozen=True)
class Flow:
    """What the callback must match: sealed into the state cookie at the start."""

    state: str
    nonce: str
    verifier: str
    redirect_uri: str
    next: str
    expires: float


@dataclass(frozen=True)
class RelyingParty:
    """Who the hub is at one provider: its client there, the egress profile, the leeway.

    Staff log in through the city's provider; clients of Mein Verfahren through the citizen
    login (hub.portal.citizen). Both run the same checks."""

    client_id: str
    client_secret: str | None
    profile: str
    leeway: int
    scope: str = SCOPE

    @classmethod
    def staff(cls, settings: Settings) -> RelyingParty:
        """The staff login's client at the city's provider."""
        return cls(
            client_id=settings.staff_oidc_client_id or "",
            client_secret=settings.staff_oidc_client_secret,
            profile=settings.profile,
            leeway=settings.clock_skew_seconds,
        )


def configured(settings: Settings) -> bool:
    """True when the staff login through the city's provider is switched on."""
    return bool(settings.staff_oidc_issuer and settings.staff_oidc_client_id)


# ---------------------------------------------------------------------- the provider


class Provider:
    """The provider's metadata and signing keys, fetched from its discovery and cached."""

    def __init__(self, issuer: str, egress: EgressPolicy = PRODUCTION) -> None:
        self.issuer = issuer
        self.egress = egress
        self._lock = threading.Lock()
        self._metadata: tuple[float, dict[str, Any]] | None = None
        self._keys: tuple[float, KeySet] | None = None

    def metadata(self) -> dict[str, Any]:
        """The discovery document; its issuer must be the configured one, its URLs secure."""
        with self._lock:
            now = time.monotonic()
            if self._metadata and now - self._metadata[0] < METADATA_MAX_AGE_SECONDS:
                return self._metadata[1]
            data = _fetch_json(self.issuer.rstrip("/") + DISCOVERY_PATH, self.egress)
            _check_metadata(data, self.issuer)
            self._metadata = (now, data)
            return data

    def signing_key(self, kid: str | None) -> Key | None:
        """The key with this kid (or the only key when the token names none), else None."""
        jwks_uri = self.metadata()["jwks_uri"]
        with self._lock:
            now = time.monotonic()
            age = None if self._keys is None else now - self._keys[0]
            key = None
            if self._keys is not None and age is not None and age < JWKS_MAX_AGE_SECONDS:
                key = _pick(self._keys[1], kid)
            if key is None and (age is None or age >= JWKS_MIN_RELOAD_SECONDS):
                self._keys = (now, _key_set(_fetch_json(jwks_uri, self.egress)))
                key = _pick(self._keys[1], kid)
            return key


def _fetch_json(url: str, egress: EgressPolicy) -> dict[str, Any]:
    # No redirects: the configured issuer is the trust anchor, not wherever it points to.
    try:
        with httpx.Client(timeout=HTTP_TIMEOUT, **client_options(egress)) as http:
            response = http.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise unavailable("provider_unreachable") from exc
    if response.status_code != 200:
        raise unavailable("provider_answered_" + str(response.status_code))
    try:
        data = response.json()
    except ValueError as exc:
        raise unavailable("provider_answer_not_json") from exc
    if not isinstance(data, dict):
        raise unavailable("provider_answer_not_json")
    return data


def _check_metadata(data: dict[str, Any], issuer: str) -> None:
    # OpenID Connect Discovery 1.0 §4.3: the issuer must be exactly the one we asked.
    if data.get("issuer") != issuer:
        raise unavailable("provider_issuer_mismatch")
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        url = data.get(name)
        if not isinstance(url, str) or not is_secure_transport(url):
            raise unavailable(f"provider_{name}_invalid")


def _key_set(jwks: dict[str, Any]) -> KeySet:
    keys = jwks.get("keys")
    if not isinstance(keys, list):
        raise unavailable("provider_jwks_invalid")
    usable = [
        k
        for k in keys
        if isinstance(k, dict) and k.get("kty") in ("EC", "RSA") and k.get("use") != "enc"
    ]
    try:
        return KeySet.import_key_set({"keys": usable})
    except (JoseError, ValueError, TypeError) as exc:
        raise unavailable("provider_jwks_invalid") from exc


def _pick(keys: KeySet, kid: str | None) -> Key | None:
    if kid is None:
        return keys.keys[0] if len(keys.keys) == 1 else None
    return next((k for k in keys.keys if k.kid == kid), None)


def _provider(request: Request) -> Provider:
    state = request.app.state
    with _STATE_LOCK:
        provider: Provider | None = getattr(state, "oidc_provider", None)
        if provider is None or provider.issuer != state.settings.staff_oidc_issuer:
            egress = EgressPolicy.for_profile(state.settings.profile)
            provider = Provider(state.settings.staff_oidc_issuer, egress)
            state.oidc_provider = provider
        return provider


# ---------------------------------------------------------------------- the state cookie


def seal_key(request: Request) -> bytes:
    state = request.app.state
    with _STATE_LOCK:
        key: bytes | None = getattr(state, "oidc_seal_key", None)
        if key is None:
            key = AESGCM.generate_key(bit_length=256)
            state.oidc_seal_key = key
        return key


def seal(key: bytes, flow: Flow) -> str:
    """The flow encrypted and authenticated, as a cookie value."""
    iv = secrets.token_bytes(12)
    plain = json.dumps(asdict(flow), separators=(",", ":")).encode()
    sealed = iv + AESGCM(key).encrypt(iv, plain, _SEAL_CONTEXT)
    return base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def unseal(key: bytes, value: str, *, now: float) -> Flow | None:
    """The flow in a cookie value, or None if it was altered, made elsewhere, or expired."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        plain = AESGCM(key).decrypt(raw[:12], raw[12:], _SEAL_CONTEXT)
        flow = Flow(**json.loads(plain))
    except (InvalidTag, ValueError, TypeError):
        return None
    return flow if flow.expires > now else None


# ---------------------------------------------------------------------- routes


@router.get("/login/oidc")
def oidc_start(request: Request, next: str = "") -> Response:
    """Send the browser to the provider (authorization code with PKCE S256, state, nonce)."""
    settings: Settings = request.app.state.settings
    if not configured(settings):
        raise NotFound("login with the city account is not configured")
    try:
        metadata = _provider(request).metadata()
    except LoginFailed as failure:
        return _refuse(request, failure)
    url, sealed = begin(
        request,
        RelyingParty.staff(settings),
        metadata,
        callback="oidc_callback",
        next=safe_next(next),
    )
    response = RedirectResponse(url, status_code=303)
    set_cookie(request, response, STATE_COOKIE, sealed, max_age=STATE_SECONDS)
    return response


def begin(
    request: Request, rp: RelyingParty, metadata: dict[str, Any], *, callback: str, next: str
) -> tuple[str, str]:
    """A new flow: the provider's authorization URL (PKCE S256, state, nonce) and the flow
    sealed for the caller's state cookie."""
    flow = Flow(
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        verifier=secrets.token_urlsafe(64),
        redirect_uri=str(request.url_for(callback)),
        next=next,
        expires=time.time() + STATE_SECONDS,
    )
    with client_for(rp, metadata, flow.redirect_uri) as client:
        url, _ = client.create_authorization_url(
            metadata["authorization_endpoint"],
            state=flow.state,
            code_verifier=flow.verifier,
            nonce=flow.nonce,
        )
    return str(url), seal(seal_key(request), flow)


@router.get("/login/oidc/callback", name="oidc_callback")
def oidc_callback(request: Request) -> Response:
    """Check state, exchange the code, validate the ID token and open a staff session."""
    settings: Settings = request.app.state.settings
    if not configured(settings):
        raise NotFound("login with the city account is not configured")
    try:
        flow = _flow_of(request)
        code = code_of(request, flow)
        provider = _provider(request)
        rp = RelyingParty.staff(settings)
        id_token = exchange(rp, provider.metadata(), flow, code)
        claims = validate_id_token(provider, rp, id_token, nonce=flow.nonce)
        email = _email_of(claims)
        token = _start_session(request, email)
    except LoginFailed as failure:
        return _refuse(request, failure)
    response = RedirectResponse(flow.next or f"{PREFIX}/", status_code=303)
    set_cookie(request, response, SESSION_COOKIE, token, max_age=accounts.SESSION_HOURS * 3600)
    response.delete_cookie(STATE_COOKIE, path=PREFIX)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=PREFIX)
    return response


def _flow_of(request: Request) -> Flow:
    value = request.cookies.get(STATE_COOKIE)
    flow = unseal(seal_key(request), value, now=time.time()) if value else None
    if flow is None:
        raise LoginFailed("state_missing_or_expired", message="oidc.failed", status=400)
    return flow


def code_of(request: Request, flow: Flow) -> str:
    params = request.query_params
    if not secrets.compare_digest(params.get("state", "").encode(), flow.state.encode()):
        raise LoginFailed("state_mismatch", message="oidc.failed", status=400)
    if "error" in params:
        raise LoginFailed("provider_error")
    code = params.get("code")
    if not code:
        raise LoginFailed("no_code", message="oidc.failed", status=400)
    return code


def client_for(rp: RelyingParty, metadata: dict[str, Any], redirect_uri: str) -> Any:
    """An authlib OAuth 2.0 client for the code flow with PKCE S256 at the provider."""
    secret = rp.client_secret
    return OAuth2Client(
        client_id=rp.client_id,
        client_secret=secret,
        token_endpoint_auth_method=_auth_method(metadata, has_secret=bool(secret)),
        scope=rp.scope,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        timeout=HTTP_TIMEOUT,
        **client_options(EgressPolicy.for_profile(rp.profile)),  # no redirects, SSRF guard
    )


def _auth_method(metadata: dict[str, Any], *, has_secret: bool) -> str:
    if not has_secret:
        return "none"
    # OpenID Connect Discovery 1.0 §3: client_secret_basic when the provider names none.
    supported = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    if "client_secret_basic" not in supported and "client_secret_post" in supported:
        return "client_secret_post"
    return "client_secret_basic"


def exchange(rp: RelyingParty, metadata: dict[str, Any], flow: Flow, code: str) -> str:
    """The ID token the token endpoint gives for the code and the PKCE verifier."""
    try:
        with client_for(rp, metadata, flow.redirect_uri) as client:
            tokens = client.fetch_token(
                metadata["token_endpoint"],
                grant_type="authorization_code",
                code=code,
                code_verifier=flow.verifier,
            )
    except httpx.TransportError as exc:
        raise unavailable("token_endpoint_unreachable") from exc
    except (AuthlibBaseError, httpx.HTTPError, ValueError, TypeError, KeyError) as exc:
        raise LoginFailed("token_exchange_failed") from exc
    id_token = tokens.get("id_token")
    if not isinstance(id_token, str):
        raise LoginFailed("no_id_token")
    return id_token


def validate_id_token(
    provider: Provider, rp: RelyingParty, id_token: str, *, nonce: str
) -> dict[str, Any]:
    """The claims of a valid ID token (OpenID Connect Core 1.0 §3.1.3.7); else LoginFailed."""
    try:
        header = jws.extract_compact(id_token.encode("ascii")).headers()
    except (JoseError, ValueError, TypeError) as exc:
        raise LoginFailed("id_token_malformed") from exc
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise LoginFailed("id_token_algorithm_not_allowed")
    kid = header.get("kid")
    key = provider.signing_key(kid if isinstance(kid, str) else None)
    if key is None:
        raise LoginFailed("id_token_key_unknown")
    try:
        claims = jwt.decode(id_token, key, algorithms=[alg]).claims
        _claims_registry(provider, rp, nonce).validate(claims)
    except (JoseError, ValueError, TypeError) as exc:
        raise LoginFailed("id_token_invalid") from exc
    _check_audience(claims, rp.client_id)
    return claims


def _claims_registry(provider: Provider, rp: RelyingParty, nonce: str) -> jwt.JWTClaimsRegistry:
    return jwt.JWTClaimsRegistry(
        leeway=rp.leeway,
        iss={"essential": True, "value": provider.issuer},
        sub={"essential": True},
        aud={"essential": True, "value": rp.client_id},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce},
    )


def _check_audience(claims: dict[str, Any], client_id: str) -> None:
    # §3.1.3.7 (3)-(5): we are the audience, no one else we do not trust, azp names us.
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if audiences != [client_id]:
        raise LoginFailed("id_token_audience_mismatch")
    if "azp" in claims and claims["azp"] != client_id:
        raise LoginFailed("id_token_azp_mismatch")


def _email_of(claims: dict[str, Any]) -> str:
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise LoginFailed("id_token_without_email", message="oidc.unknown")
    if claims.get("email_verified") is False:
        raise LoginFailed("email_not_verified", message="oidc.unknown")
    return email.strip().lower()


def _start_session(request: Request, email: str) -> str:
    """A fresh session for the active account with this e-mail, audited; else LoginFailed."""
    now = utcnow()
    with unit_of_work(request.app.state.session_factory) as session:
        account = session.scalars(select(StaffAccount).where(StaffAccount.email == email)).first()
        if account is None or not account.active:
            token = None
        else:
            old = request.cookies.get(SESSION_COOKIE)
            if old:
                accounts.end_session(session, token=old)
            account.last_login_at = now
            token = accounts.start_session(session, account=account, now=now)
            record(
                session,
                actor_type="staff",
                actor=account.email,
                action="staff.login",
                details={"method": "oidc"},
            )
    if token is None:
        raise LoginFailed("unknown_account", message="oidc.unknown")
    return token


def _refuse(request: Request, failure: LoginFailed) -> Response:
    """The login page saying why, the refusal in the audit trail; never a 500."""
    with unit_of_work(request.app.state.session_factory) as session:
        record(
            session,
            actor_type="staff",
            actor="anonymous",
            action="staff.login_refused",
            details={"method": "oidc", "reason": failure.reason},
        )
    csrf = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    request.state.login_csrf = csrf
    response = render(
        request,
        "login.html",
        staff=None,
        next="",
        error=failure.message,
        status_code=failure.status,
    )
    set_cookie(request, response, LOGIN_CSRF_COOKIE, csrf, max_age=3600)
    response.delete_cookie(STATE_COOKIE, path=PREFIX)
    return response
