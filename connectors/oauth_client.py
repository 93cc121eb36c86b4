"""OAuth client helpers for partner systems talking to the hub (also used by our simulators).

``hub_client``: authlib with bearer tokens. authlib's ``private_key_jwt`` signs RS256
assertions valid for an hour by default; the hub accepts ES256/PS256/EdDSA assertions of at
most 60 seconds, so this helper sets both, with the hub's issuer identifier as audience.

``DPoPAuth`` / ``dpop_client``: httpx with DPoP-bound tokens (RFC 9449). authlib has no DPoP,
so this fetches tokens itself (client credentials) and signs a fresh proof for each request.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
import uuid
from collections.abc import Generator
from typing import Any
from urllib.parse import quote_plus

import httpx
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

ASSERTION_LIFETIME_SECONDS = 60
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_PATH = "/oauth/token"  # noqa: S105
_ERROR = re.compile(r'error="([^"]*)"')


def issuer_of(token_endpoint: str) -> str:
    """The hub's issuer identifier: its token endpoint URL without ``/oauth/token``."""
    return token_endpoint.removesuffix(TOKEN_PATH)


class ShortLivedPrivateKeyJWT(PrivateKeyJWT):
    """``private_key_jwt`` with ES256 and a 60-second assertion, a fresh ``jti`` each time."""

    alg = "ES256"

    def sign(self, auth: Any, token_endpoint: str) -> str:
        """A client assertion for one token request, addressed to the hub's issuer."""
        return str(
            private_key_jwt_sign(
                auth.client_secret,
                client_id=auth.client_id,
                token_endpoint=issuer_of(token_endpoint),  # authlib puts this into aud
                alg=self.alg,
                expires_in=ASSERTION_LIFETIME_SECONDS,
            )
        )


def hub_client(
    token_endpoint: str,
    client_id: str,
    *,
    client_secret: str | None = None,
    private_key: ECKey | None = None,
    scope: str | None = None,
    **httpx_options: Any,
) -> OAuth2Client:
    """An httpx client that fetches and renews hub access tokens by itself."""
    if (client_secret is None) == (private_key is None):
        raise ValueError("give either client_secret or private_key")
    auth: Any = (
        "client_secret_basic" if private_key is None else ShortLivedPrivateKeyJWT(token_endpoint)
    )
    return OAuth2Client(
        client_id=client_id,
        client_secret=client_secret or private_key,
        token_endpoint_auth_method=auth,
        token_endpoint=token_endpoint,
        grant_type="client_credentials",
        scope=scope,
        leeway=30,
        **httpx_options,
    )


class DPoPTokenError(RuntimeError):
    """The token endpoint refused to issue a DPoP-bound token."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"token request failed: {response.status_code} {response.text}")
        self.response = response


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signing_alg(key: ECKey | RSAKey | OKPKey) -> str:
    if isinstance(key, ECKey):
        return "ES256"
    return "PS256" if isinstance(key, RSAKey) else "EdDSA"


class DPoPAuth(httpx.Auth):
    """httpx auth for the hub with DPoP-bound tokens.

    Fetches a token by client credentials (``client_secret_basic`` or ``private_key_jwt``)
    with a proof of ``dpop_key`` (ES256, generated if not given), renews it before it
    expires, and sends every request as ``Authorization: DPoP <token>`` with a fresh proof.
    When a server answers ``use_dpop_nonce`` with a ``DPoP-Nonce``, the request is sent once
    more with that nonce; later proofs to that server carry the newest nonce it sent.
    """

    requires_response_body = True

    def __init__(
        self,
        token_endpoint: str,
        client_id: str,
        *,
        client_secret: str | None = None,
        private_key: ECKey | RSAKey | OKPKey | None = None,
        scope: str | None = None,
        dpop_key: ECKey | None = None,
        leeway: int = 30,
    ) -> None:
        if (client_secret is None) == (private_key is None):
            raise ValueError("give either client_secret or private_key")
        self.token_endpoint = token_endpoint
        self.client_id = client_id
        self.scope = scope
        self.dpop_key = dpop_key or ECKey.generate_key("P-256")
        self._client_secret = client_secret
        self._private_key = private_key
        self._leeway = leeway
        self._public_jwk = {
            k: v for k, v in self.dpop_key.as_dict(private=False).items() if k != "kid"
        }
        self._nonces: dict[str, str] = {}
        self._token: str | None = None
        self._expires_at = 0.0

    @property
    def access_token(self) -> str | None:
        """The current DPoP-bound access token, if one was fetched."""
        return self._token

    def proof(self, method: str, url: str | httpx.URL, access_token: str | None = None) -> str:
        """A DPoP proof for one request (RFC 9449 §4.2): a new ``jti`` each time."""
        target = httpx.URL(url)
        claims: dict[str, Any] = {
            "jti": str(uuid.uuid4()),
            "htm": method,
            "htu": str(target.copy_with(query=None, fragment=None)),
            "iat": int(time.time()),
        }
        nonce = self._nonces.get(_origin(target))
        if nonce:
            claims["nonce"] = nonce
        if access_token is not None:
            claims["ath"] = _b64url(hashlib.sha256(access_token.encode("ascii")).digest())
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self._public_jwk}
        return jwt.encode(header, claims, self.dpop_key, algorithms=["ES256"])

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Fetch a token if needed, prove possession, retry once on a nonce or stale token."""
        fresh = self._token is None or time.time() >= self._expires_at - self._leeway
        if fresh:
            yield from self._fetch_token()
        response = yield self._sign(request)
        self._remember_nonce(response)
        error = _challenge_error(response)
        if response.status_code == 401 and error == "use_dpop_nonce":
            response = yield self._sign(request)
            self._remember_nonce(response)
        elif response.status_code == 401 and error == "invalid_token" and not fresh:
            yield from self._fetch_token()  # revoked or rotated away: one new token
            response = yield self._sign(request)
            self._remember_nonce(response)

    def fetch_token(self, client: httpx.Client) -> str:
        """Fetch a new token now with ``client`` (without this auth); return it."""
        flow = self._fetch_token()
        request = next(flow)
        try:
            while True:
                request = flow.send(client.send(request, auth=None))
        except StopIteration:
            pass
        assert self._token is not None
        return self._token

    def _sign(self, request: httpx.Request) -> httpx.Request:
        assert self._token is not None
        request.headers["Authorization"] = f"DPoP {self._token}"
        request.headers["DPoP"] = self.proof(request.method, request.url, self._token)
        return request

    def _fetch_token(self) -> Generator[httpx.Request, httpx.Response, None]:
        response = yield self._token_request()
        self._remember_nonce(response)
        if response.status_code == 400 and _body_error(response) == "use_dpop_nonce":
            response = yield self._token_request()
            self._remember_nonce(response)
        if response.status_code != 200:
            raise DPoPTokenError(response)
        body = response.json()
        if str(body.get("token_type", "")).lower() != "dpop":
            raise DPoPTokenError(response)
        self._token = str(body["access_token"])
        self._expires_at = time.time() + float(body.get("expires_in", 0))

    def _token_request(self) -> httpx.Request:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        headers = {"DPoP": self.proof("POST", self.token_endpoint)}
        if self._private_key is not None:
            form["client_assertion_type"] = ASSERTION_TYPE
            form["client_assertion"] = self._assertion(self._private_key)
        else:
            raw = f"{quote_plus(self.client_id)}:{quote_plus(self._client_secret or '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(raw.encode()).decode()
        return httpx.Request("POST", self.token_endpoint, data=form, headers=headers)

    def _assertion(self, key: ECKey | RSAKey | OKPKey) -> str:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": issuer_of(self.token_endpoint),
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECONDS,
            "jti": str(uuid.uuid4()),
        }
        alg = _signing_alg(key)
        header = {"alg": alg, **({"kid": key.kid} if key.kid else {})}
        return jwt.encode(header, claims, key, algorithms=[alg])

    def _remember_nonce(self, response: httpx.Response) -> None:
        nonce = response.headers.get("dpop-nonce")
        if nonce:
            self._nonces[_origin(response.request.url)] = nonce


def _origin(url: httpx.URL) -> str:
    return f"{url.scheme}://{url.netloc.decode('ascii')}"


def _challenge_error(response: httpx.Response) -> str | None:
    challenge = response.headers.get("www-authenticate", "")
    scheme, _, params = challenge.partition(" ")
    match = _ERROR.search(params) if scheme.lower() == "dpop" else None
    return match.group(1) if match else None


def _body_error(response: httpx.Response) -> str | None:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    return error if isinstance(error, str) else None


def dpop_client(
    token_endpoint: str,
    client_id: str,
    *,
    client_secret: str | None = None,
    private_key: ECKey | RSAKey | OKPKey | None = None,
    scope: str | None = None,
    dpop_key: ECKey | None = None,
    **httpx_options: Any,
) -> httpx.Client:
    """An httpx client that sends every request with a DPoP-bound token and its proof."""
    auth = DPoPAuth(
        token_endpoint,
        client_id,
        client_secret=client_secret,
        private_key=private_key,
        scope=scope,
        dpop_key=dpop_key,
    )
    return httpx.Client(auth=auth, **httpx_options)
