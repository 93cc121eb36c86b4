"""The token endpoint (RFC 6749 §4.4, client credentials) and server metadata (RFC 8414)."""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.auth.dpop import DPOP_ALGS, DPoP, InvalidDPoPProof, ProofRejected
from hub.auth.keys import SigningKeys
from hub.auth.models import UsedAssertion
from hub.auth.scopes import SCOPES
from hub.auth.secrets import hash_secret
from hub.auth.tokens import issue_access_token
from hub.db import utcnow
from hub.errors import HubError, InvalidClient, InvalidGrant, MalformedRequest
from hub.partners.models import OAuthClient
from hub.settings import Settings

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# RSA PKCS#1 v1.5 and HMAC are left out: the design allows only ES256, PS256 and EdDSA.
ASSERTION_ALGS = ("ES256", "PS256", "EdDSA")
# Explicit types other than these (at+jwt, dpop+jwt, ...) mark JWTs made for something else.
ASSERTION_TYPES = frozenset({"jwt", "client-authentication+jwt"})
AUTH_METHODS = ("private_key_jwt", "client_secret_basic")
_NO_SECRET = hash_secret("no client has this secret")
# RFC 6749 §5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E.
_DESCRIPTION_CHARS = frozenset(chr(c) for c in range(0x20, 0x7F)) - {'"', "\\"}


def token_endpoint(settings: Settings) -> str:
    """The absolute URL of the token endpoint, as published in the metadata."""
    return settings.resolved_issuer.rstrip("/") + "/oauth/token"


def metadata(settings: Settings) -> dict[str, Any]:
    """The authorization server metadata document (RFC 8414 §2)."""
    issuer = settings.resolved_issuer
    return {
        "issuer": issuer,
        "token_endpoint": token_endpoint(settings),
        "jwks_uri": issuer.rstrip("/") + "/.well-known/jwks.json",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "dpop_signing_alg_values_supported": list(DPOP_ALGS),
        "scopes_supported": list(SCOPES),
        # RFC 8414 §2 makes this member REQUIRED and §3.2 forbids an empty array, though a
        # client-credentials server has no authorization endpoint and RFC 7591 §2.1 pairs
        # client_credentials with no response type at all. "token" is the registered value
        # for a response that is an access token; with no authorization_endpoint and only
        # client_credentials in grant_types_supported no client can start an implicit flow
        # from it. authlib's metadata validator refuses the document without a non-empty
        # list. Erratum 7793 (reported, not verified) would let the member be left out.
        "response_types_supported": ["token"],
    }


def error_response(exc: HubError) -> dict[str, str]:
    """The RFC 6749 §5.2 error body of a failed token request (RFC 9449 §5 and §8 codes too)."""
    error = exc.extensions.get("error")
    if not isinstance(error, str):
        error = "invalid_client" if exc.status == 401 else "invalid_request"
    detail = exc.detail.replace('"', "'")
    return {
        "error": error,
        "error_description": "".join(c if c in _DESCRIPTION_CHARS else "?" for c in detail),
    }


def token_request(
    *,
    session: Session,
    keys: SigningKeys,
    settings: Settings,
    form: dict[str, str],
    authorization_header: str | None,
    token_endpoint_url: str,
    now: datetime | None = None,
    dpop: DPoP | None = None,
    dpop_proofs: Sequence[str] = (),
) -> dict[str, Any]:
    """Answer a token request: authenticate the client, grant scopes, issue a token.

    With a DPoP proof (the ``DPoP`` request headers in ``dpop_proofs``) the token is bound to
    the proof's key (RFC 9449 §5); partners with ``dpop_required`` must send one.
    """
    grant_type = form.get("grant_type")
    if grant_type is None:
        raise InvalidGrant("grant_type is required", error="invalid_request")
    if grant_type != "client_credentials":
        raise InvalidGrant("only client_credentials is supported", error="unsupported_grant_type")
    now = now or utcnow()
    dpop = dpop or DPoP(settings)
    proof = dpop.token_proof(dpop_proofs, token_endpoint_url, now.timestamp())
    client = authenticate_client(
        session=session,
        settings=settings,
        form=form,
        authorization_header=authorization_header,
        token_endpoint_url=token_endpoint_url,
        now=now,
    )
    if proof is None and client.partner.dpop_required:
        raise InvalidDPoPProof("this client must send a DPoP proof", error="invalid_dpop_proof")
    scopes = _granted_scopes(client, form.get("scope"))
    if proof is not None:
        try:
            dpop.remember(session, proof, now.timestamp())
        except ProofRejected as exc:
            raise InvalidDPoPProof(str(exc), error="invalid_dpop_proof") from exc
    token, expires_in = issue_access_token(
        session=session,
        keys=keys,
        settings=settings,
        client=client,
        scopes=scopes,
        now=now,
        jkt=proof.jkt if proof else None,
    )
    return {
        "access_token": token,
        "token_type": "DPoP" if proof else "Bearer",
        "expires_in": expires_in,
        "scope": " ".join(sorted(scopes)),
    }


def authenticate_client(
    *,
    session: Session,
    settings: Settings,
    form: dict[str, str],
    authorization_header: str | None,
    token_endpoint_url: str,
    now: datetime,
) -> OAuthClient:
    """The client proven by exactly one of client_secret_basic or private_key_jwt."""
    basic = authorization_header is not None and authorization_header[:6].lower() == "basic "
    assertion = "client_assertion" in form or "client_assertion_type" in form
    if basic and assertion:
        # RFC 6749 §2.3: a client MUST NOT use more than one authentication method.
        raise MalformedRequest("use one client authentication method", error="invalid_request")
    if "client_secret" in form:
        raise _invalid_client("client_secret_post is not supported")
    if basic and authorization_header is not None:
        client = _authenticate_basic(session, authorization_header[6:])
    elif assertion:
        client = _authenticate_assertion(session, settings, form, token_endpoint_url, now)
    else:
        raise _invalid_client("client authentication required")
    if client.revoked_at is not None or not client.partner.active:
        raise _invalid_client("client revoked or partner inactive")
    return client


def _invalid_client(detail: str) -> InvalidClient:
    return InvalidClient(detail, error="invalid_client")


def _authenticate_basic(session: Session, credentials: str) -> OAuthClient:
    try:
        raw_id, raw_secret = (
            base64.b64decode(credentials.strip(), validate=True).decode().split(":", 1)
        )
    except ValueError as exc:
        raise _invalid_client("malformed Basic credentials") from exc
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Base64.
    client = session.get(OAuthClient, unquote_plus(raw_id))
    if client is not None and client.auth_method != "client_secret_basic":
        raise _invalid_client("client is not registered for client_secret_basic")
    expected = (client.secret_hash if client else None) or _NO_SECRET
    # Compare even for unknown clients so that timing does not reveal which ids exist.
    matches = hmac.compare_digest(hash_secret(unquote_plus(raw_secret)), expected)
    if client is None or not matches or expected == _NO_SECRET:
        raise _invalid_client("invalid client credentials")
    return client


def _authenticate_assertion(
    session: Session, settings: Settings, form: dict[str, str], endpoint: str, now: datetime
) -> OAuthClient:
    # RFC 7523 §2.2 and §3: a JWT signed by the client, iss = sub = client_id.
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise _invalid_client("unsupported client_assertion_type")
    signed, claims = _parse_assertion(form.get("client_assertion", ""))
    client_id = claims.get("sub")
    if not isinstance(client_id, str) or claims.get("iss") != client_id:
        raise _invalid_client("client assertion iss and sub must both be the client_id")
    if form.get("client_id", client_id) != client_id:
        raise _invalid_client("client_id does not match the client assertion")
    client = session.get(OAuthClient, client_id)
    if client is None:
        raise _invalid_client("invalid client credentials")
    if client.auth_method != "private_key_jwt" or not client.jwks:
        raise _invalid_client("client is not registered for private_key_jwt")
    _verify_assertion_signature(signed, client.jwks)
    exp = _check_assertion_claims(claims, settings, endpoint, now.timestamp())
    _record_assertion(session, client_id, claims["jti"], exp + settings.clock_skew_seconds, now)
    return client


def _parse_assertion(assertion: str) -> tuple[jws.CompactSignature, dict[str, Any]]:
    try:
        signed = jws.extract_compact(assertion.encode("ascii"))
        claims = json.loads(signed.payload)
    except (JoseError, ValueError, TypeError) as exc:
        raise _invalid_client("client assertion malformed") from exc
    if not isinstance(claims, dict):
        raise _invalid_client("client assertion malformed")
    header = signed.headers()
    if header.get("alg") not in ASSERTION_ALGS:
        raise _invalid_client("client assertion algorithm not allowed")
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in ASSERTION_TYPES):
        raise _invalid_client("client assertion typ not allowed")
    return signed, claims


def _verify_assertion_signature(signed: jws.CompactSignature, jwks: dict[str, Any]) -> None:
    header = signed.headers()
    try:
        keys = KeySet.import_key_set(jwks).keys  # type: ignore[arg-type]
    except (JoseError, ValueError, KeyError, TypeError) as exc:
        raise _invalid_client("client JWKS unusable") from exc
    kid = header.get("kid")
    candidates = [k for k in keys if k.kid == kid] if kid else keys
    for key in candidates:
        try:
            if jws.validate_compact(signed, key, algorithms=[header["alg"]]):
                return
        except (JoseError, ValueError):
            continue
    raise _invalid_client("client assertion signature invalid")


def _check_assertion_claims(
    claims: dict[str, Any], settings: Settings, endpoint: str, now: float
) -> float:
    _check_assertion_audience(claims.get("aud"), settings, endpoint)
    skew, max_lifetime = settings.clock_skew_seconds, settings.client_assertion_max_lifetime_seconds
    exp = _number(claims, "exp")
    if now >= exp + skew:
        raise _invalid_client("client assertion expired")
    iat = _number(claims, "iat") if "iat" in claims else None
    if iat is not None and iat > now + skew:
        raise _invalid_client("client assertion issued in the future")
    if "nbf" in claims and _number(claims, "nbf") > now + skew:
        raise _invalid_client("client assertion not yet valid")
    # A short lifetime bounds how long a leaked assertion is useful and how long we keep its jti.
    if exp - (iat if iat is not None else now) > max_lifetime:
        raise _invalid_client(f"client assertion lifetime exceeds {max_lifetime} seconds")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= 255:
        raise _invalid_client("client assertion missing jti")
    return exp


def _check_assertion_audience(aud: object, settings: Settings, endpoint: str) -> None:
    # draft-ietf-oauth-rfc7523bis: the issuer identifier, alone. An array naming anyone else
    # too would be accepted by that other server as well, so it is refused. The token
    # endpoint URL (RFC 7523, authlib's default) is accepted while the setting allows it.
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    accepted = {settings.resolved_issuer}
    if settings.client_assertion_token_endpoint_audience:
        accepted.add(endpoint)
    if not audiences or not all(isinstance(a, str) and a in accepted for a in audiences):
        raise _invalid_client("client assertion audience mismatch")


def _number(claims: dict[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid_client(f"client assertion missing or invalid {name}")
    return float(value)


def _record_assertion(
    session: Session, client_id: str, jti: str, until: float, now: datetime
) -> None:
    # RFC 7523 §3 item 7: a jti may be used once; keep it as long as the assertion is valid.
    session.execute(
        delete(UsedAssertion).where(
            UsedAssertion.client_id == client_id, UsedAssertion.expires_at < now
        )
    )
    if session.get(UsedAssertion, (client_id, jti)) is not None:
        raise _invalid_client("client assertion replayed")
    session.add(
        UsedAssertion(client_id=client_id, jti=jti, expires_at=datetime.fromtimestamp(until, UTC))
    )
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent request used the same jti first
        raise _invalid_client("client assertion replayed") from exc


def _granted_scopes(client: OAuthClient, requested: str | None) -> frozenset[str]:
    allowed = client.scope_set
    if requested is None or not requested.strip():
        return allowed  # RFC 6749 §3.3: the server may apply a default scope
    wanted = frozenset(requested.split())
    if not wanted <= allowed:
        missing = " ".join(sorted(wanted - allowed))
        raise InvalidGrant(f"scope not allowed for this client: {missing}", error="invalid_scope")
    return wanted
