"""DPoP (RFC 9449): proofs at the token endpoint and at the API, replay cache, server nonces.

``htu`` is compared with the URL the hub says it serves: ``HUB_ISSUER`` + the request path,
never with the Host or X-Forwarded-* headers of the request, so a proxy in front of the hub
changes nothing and a client cannot choose what it is compared with. Both sides are
normalised (RFC 3986 §6.2.2-6.2.3) and query and fragment are ignored (RFC 9449 §4.3). A
proxy that publishes the hub under a path (``HUB_ISSUER=https://host/hub``) must strip that
path before the request reaches the gateway, as it must for the token endpoint already.

Nonces (RFC 9449 §8) are stateless: a timestamp and its HMAC. The token endpoint demands one
when ``HUB_DPOP_NONCE_REQUIRED`` is set; the API relies on the replay cache and ``iat``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, Key, RSAKey
from joserfc.jws import JWSRegistry
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from hub.auth.models import UsedDPoPProof
from hub.db import insert_if_absent, unit_of_work
from hub.errors import HubError, Unauthenticated
from hub.settings import Settings

#: RFC 9449 §4.2: asymmetric only; "none" and HMAC could be forged by anyone.
DPOP_ALGS = ("ES256", "PS256", "EdDSA")
PROOF_TYPE = "dpop+jwt"
MAX_PROOF_CHARS = 8192
MIN_RSA_BITS = 2048
PURGE_INTERVAL_SECONDS = 60.0
_KEY_TYPES: dict[str, tuple[str, frozenset[str] | None]] = {
    "ES256": ("EC", frozenset({"P-256"})),
    "PS256": ("RSA", None),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Every process has its own nonce key unless HUB_DPOP_NONCE_SECRET gives a shared one.
_PROCESS_SECRET = secrets.token_bytes(32)


class _ProofRegistry(JWSRegistry):
    """joserfc's JWS rules with room for an RSA key in the header (default limit 512 bytes)."""

    max_header_length = 4096


_REGISTRY = _ProofRegistry(algorithms=DPOP_ALGS)


class InvalidDPoPProof(HubError):
    """A token request whose DPoP proof is missing or invalid (RFC 9449 §5)."""

    status, slug, title = 400, "invalid-dpop-proof", "Invalid DPoP proof"


class UseDPoPNonce(HubError):
    """A token request whose DPoP proof lacks a valid hub nonce (RFC 9449 §8)."""

    status, slug, title = 400, "use-dpop-nonce", "DPoP nonce required"

    def __init__(self, detail: str, *, nonce: str) -> None:
        super().__init__(detail, error="use_dpop_nonce")
        self.nonce = nonce


class ProofRejected(ValueError):
    """A DPoP proof failed one check; the message names which."""


@dataclass(frozen=True)
class Proof:
    """A checked DPoP proof: its key's RFC 7638 thumbprint and what the replay cache needs."""

    jkt: str
    jti: str
    iat: float
    nonce: str | None


def b64url(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def access_token_hash(token: str) -> str:
    """The ``ath`` of a token: base64url of its SHA-256 (RFC 9449 §4.2)."""
    return b64url(hashlib.sha256(token.encode("ascii")).digest())


def check_proof(
    proof: str,
    *,
    method: str,
    url: str,
    now: float,
    max_age: int,
    skew: int,
    access_token: str | None = None,
) -> Proof:
    """Check a proof's form, key, signature and claims (RFC 9449 §4.3); no replay check."""
    signed = _parse(proof)
    header = signed.headers()
    if not isinstance(header.get("typ"), str) or header["typ"].lower() != PROOF_TYPE:
        raise ProofRejected("DPoP proof typ is not dpop+jwt")
    alg = header.get("alg")
    if alg not in DPOP_ALGS:
        raise ProofRejected("DPoP proof algorithm not allowed")
    key = _proof_key(header.get("jwk"), alg)
    try:
        valid = jws.validate_compact(signed, key, algorithms=[alg], registry=_REGISTRY)
    except (JoseError, ValueError) as exc:
        raise ProofRejected("DPoP proof signature invalid") from exc
    if not valid:
        raise ProofRejected("DPoP proof signature invalid")
    claims = _claims(signed)
    _check_request(claims, method, url)
    iat = _check_time(claims, now, max_age, skew)
    if access_token is not None:
        ath = claims.get("ath")
        if not isinstance(ath, str) or not hmac.compare_digest(
            ath, access_token_hash(access_token)
        ):
            raise ProofRejected("DPoP proof ath does not match the access token")
    nonce = claims.get("nonce")
    return Proof(
        jkt=key.thumbprint(),
        jti=claims["jti"],
        iat=iat,
        nonce=nonce if isinstance(nonce, str) else None,
    )


def _parse(proof: str) -> jws.CompactSignature:
    if len(proof) > MAX_PROOF_CHARS:
        raise ProofRejected("DPoP proof too large")
    try:
        return jws.extract_compact(proof.encode("ascii"), registry=_REGISTRY)
    except (JoseError, ValueError, TypeError) as exc:
        raise ProofRejected("DPoP proof malformed") from exc


def _proof_key(jwk: object, alg: str) -> Key:
    if not isinstance(jwk, dict):
        raise ProofRejected("DPoP proof has no jwk header")
    if _PRIVATE_MEMBERS & jwk.keys():
        raise ProofRejected("DPoP proof jwk contains a private key")
    kty, curves = _KEY_TYPES[alg]
    if jwk.get("kty") != kty or (curves is not None and jwk.get("crv") not in curves):
        raise ProofRejected("DPoP proof jwk does not fit its algorithm")
    try:
        key = JWKRegistry.import_key(jwk)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise ProofRejected("DPoP proof jwk unusable") from exc
    if key.is_private:
        raise ProofRejected("DPoP proof jwk contains a private key")
    if isinstance(key, RSAKey) and key.raw_value.key_size < MIN_RSA_BITS:
        raise ProofRejected("DPoP proof RSA key too short")
    return key


def _claims(signed: jws.CompactSignature) -> dict[str, Any]:
    try:
        claims = json.loads(signed.payload)
    except ValueError as exc:
        raise ProofRejected("DPoP proof malformed") from exc
    if not isinstance(claims, dict):
        raise ProofRejected("DPoP proof malformed")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= 255:
        raise ProofRejected("DPoP proof missing jti")
    return claims


def _check_request(claims: dict[str, Any], method: str, url: str) -> None:
    if claims.get("htm") != method:
        raise ProofRejected("DPoP proof htm does not match the request method")
    htu = claims.get("htu")
    expected = normalize_htu(url)
    if not isinstance(htu, str) or expected is None or normalize_htu(htu) != expected:
        raise ProofRejected("DPoP proof htu does not match the request URL")


def _check_time(claims: dict[str, Any], now: float, max_age: int, skew: int) -> float:
    iat = claims.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, int | float):
        raise ProofRejected("DPoP proof missing iat")
    if iat > now + skew:
        raise ProofRejected("DPoP proof issued in the future")
    if iat < now - max_age - skew:
        raise ProofRejected("DPoP proof too old")
    return float(iat)


def normalize_htu(url: str) -> str | None:
    """Scheme, host, port and path of an http(s) URL, normalised; None if it is not one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username is not None:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return f"{scheme}://{netloc}{_normalize_path(parts.path)}"


def _normalize_path(path: str) -> str:
    def percent(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    segments = _PERCENT.sub(percent, path or "/").split("/")
    out: list[str] = []
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment in (".", ".."):
            if segment == ".." and len(out) > 1:
                out.pop()
            if last:
                out.append("")
            continue
        out.append(segment)
    return "/".join(out) or "/"


class Nonces:
    """Stateless nonces: an issue time and its HMAC, accepted for ``lifetime`` seconds."""

    def __init__(self, secret: bytes, lifetime: int, skew: int) -> None:
        self._secret = secret
        self._lifetime = lifetime
        self._skew = skew

    def issue(self, now: float) -> str:
        """A fresh, unpredictable nonce."""
        stamp = struct.pack(">Q", int(now))
        return b64url(stamp + self._mac(stamp))

    def valid(self, nonce: str, now: float) -> bool:
        """True if this hub issued the nonce within its lifetime."""
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except ValueError:
            return False
        stamp, mac = raw[:8], raw[8:]
        if len(raw) != 24 or not hmac.compare_digest(mac, self._mac(stamp)):
            return False
        issued = struct.unpack(">Q", stamp)[0]
        return now - self._lifetime <= issued <= now + self._skew

    def _mac(self, stamp: bytes) -> bytes:
        return hmac.new(self._secret, b"dpop-nonce\0" + stamp, hashlib.sha256).digest()[:16]


class DPoP:
    """What the token endpoint and the API need of DPoP: checks, nonces, the replay cache."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        secret = settings.dpop_nonce_secret
        self.nonces = Nonces(
            secret.encode() if secret else _PROCESS_SECRET,
            settings.dpop_nonce_lifetime_seconds,
            settings.clock_skew_seconds,
        )
        self._purge_lock = threading.Lock()
        self._purged_at = 0.0

    def fresh_nonce(self, now: float) -> str | None:
        """A nonce for the ``DPoP-Nonce`` header when the token endpoint demands nonces."""
        return self.nonces.issue(now) if self._settings.dpop_nonce_required else None

    def token_proof(self, headers: Sequence[str], url: str, now: float) -> Proof | None:
        """The checked proof of a token request, or None without one; raises 400 errors."""
        if not headers:
            return None
        try:
            proof = self.check(headers, method="POST", url=url, now=now)
        except ProofRejected as exc:
            raise InvalidDPoPProof(str(exc), error="invalid_dpop_proof") from exc
        if self._settings.dpop_nonce_required and not (
            proof.nonce and self.nonces.valid(proof.nonce, now)
        ):
            reason = "DPoP proof nonce expired or unknown" if proof.nonce else "DPoP nonce required"
            raise UseDPoPNonce(reason, nonce=self.nonces.issue(now))
        return proof

    def resource_proof(
        self,
        factory: sessionmaker[Session],
        headers: Sequence[str],
        *,
        method: str,
        path: str,
        access_token: str,
        jkt: str,
        now: float,
    ) -> None:
        """Check an API request's proof against its DPoP-bound token; raises 401 challenges."""
        url = self._settings.resolved_issuer.rstrip("/") + path
        try:
            proof = self.check(headers, method=method, url=url, now=now, access_token=access_token)
        except ProofRejected as exc:
            raise challenge("invalid_dpop_proof", str(exc)) from exc
        if not hmac.compare_digest(proof.jkt, jkt):
            raise challenge("invalid_token", "DPoP proof key does not match the token binding")
        try:
            # Its own transaction, committed before the request runs: a replay on another
            # gateway replica collides with this row even if this request fails later.
            with unit_of_work(factory) as session:
                self.remember(session, proof, now)
        except ProofRejected as exc:
            raise challenge("invalid_dpop_proof", str(exc)) from exc

    def check(
        self,
        headers: Sequence[str],
        *,
        method: str,
        url: str,
        now: float,
        access_token: str | None = None,
    ) -> Proof:
        """Exactly one proof, checked for this request (RFC 9449 §4.3 items 1-12)."""
        if not headers:
            raise ProofRejected("DPoP proof missing")
        if len(headers) > 1:
            raise ProofRejected("more than one DPoP header")
        return check_proof(
            headers[0],
            method=method,
            url=url,
            now=now,
            max_age=self._settings.dpop_proof_max_age_seconds,
            skew=self._settings.clock_skew_seconds,
            access_token=access_token,
        )

    def remember(self, session: Session, proof: Proof, now: float) -> None:
        """Record the proof's jti; raise ProofRejected if it was seen in its window."""
        self._purge(session, now)
        until = proof.iat + self._settings.dpop_proof_max_age_seconds
        row = {
            "key": hashlib.sha256(f"{proof.jkt}\0{proof.jti}".encode()).hexdigest(),
            "expires_at": datetime.fromtimestamp(until + self._settings.clock_skew_seconds, UTC),
        }
        # One statement per proof, on every request: a concurrent request with the same proof
        # waits for ours and then finds the row (PostgreSQL), or runs after it (SQLite).
        if not insert_if_absent(session, UsedDPoPProof, row):
            raise ProofRejected("DPoP proof replayed")

    def _purge(self, session: Session, now: float) -> None:
        # At most once a minute per process: the table stays small without a delete per call.
        with self._purge_lock:
            if now - self._purged_at < PURGE_INTERVAL_SECONDS:
                return
            self._purged_at = now
        cutoff = datetime.fromtimestamp(now, UTC)
        session.execute(delete(UsedDPoPProof).where(UsedDPoPProof.expires_at < cutoff))


def challenge(error: str, reason: str) -> Unauthenticated:
    """A 401 with the RFC 9449 §7.1 ``DPoP`` challenge."""
    return Unauthenticated(reason, error=error, www_authenticate=dpop_challenge(error, reason))


def dpop_challenge(error: str | None = None, reason: str | None = None) -> str:
    """The ``WWW-Authenticate`` value of the DPoP scheme, with our algorithms."""
    params = [f'error="{error}"'] if error else []
    if reason:
        params.append(f'error_description="{reason}"')
    params.append(f'algs="{" ".join(DPOP_ALGS)}"')
    return "DPoP " + ", ".join(params)
