"""A small but real OpenID Connect provider for tests, served by uvicorn on loopback.

Discovery, a JWKS with one EC P-256 key, ``/authorize`` (auto-approves the configured user after
checking the client and its redirect URI, and records the PKCE challenge) and ``/token``
(``client_secret_basic`` or ``client_secret_post``; checks the code, the redirect URI and the
PKCE verifier; answers with an ES256 ID token). Tests make it misbehave through its attributes:
``claims`` overrides ID-token claims, ``signing_key`` signs with another key, ``deny`` refuses.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from joserfc import jwt
from joserfc.jwk import ECKey

from hub.kafka.embedded import free_port

ALG = "ES256"
CODE_SECONDS = 60
ID_TOKEN_SECONDS = 300


@dataclass(frozen=True)
class User:
    """The person the provider logs in."""

    email: str
    sub: str


@dataclass(frozen=True)
class Grant:
    """An issued authorization code and what the token request must match."""

    client_id: str
    redirect_uri: str
    nonce: str | None
    code_challenge: str
    user: User
    expires: float


def new_key(kid: str | None = None) -> ECKey:
    """An ES256 signing key; with ``kid`` it poses as another key."""
    params: dict[str, Any] = {"alg": ALG, "use": "sig"}
    if kid:
        params["kid"] = kid
    return ECKey.generate_key("P-256", parameters=params, auto_kid=kid is None)


def s256(verifier: str) -> str:
    """The PKCE S256 code challenge of a verifier (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class OidcProvider:
    """The provider app served in a thread; use as a context manager."""

    def __init__(
        self, *, client_id: str, client_secret: str, redirect_uris: list[str], user: User
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris = redirect_uris
        self.user = user
        self.key = new_key()
        self.signing_key = self.key
        self.claims: dict[str, Any] = {}
        self.deny = False
        self.authorize_requests: list[dict[str, str]] = []
        self.token_requests: list[dict[str, str]] = []
        self._grants: dict[str, Grant] = {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app(), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> OidcProvider:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test OIDC provider did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def app(self) -> FastAPI:
        """The provider's endpoints."""
        app = FastAPI()
        app.get("/.well-known/openid-configuration")(self.discovery)
        app.get("/jwks")(self.jwks)
        app.get("/authorize")(self.authorize)
        app.post("/token")(self.token)
        return app

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "jwks_uri": f"{self.url}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALG],
            "scopes_supported": ["openid", "email"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        }

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.as_dict(private=False)]}

    def authorize(self, request: Request) -> Response:
        params = dict(request.query_params)
        self.authorize_requests.append(params)
        redirect_uri = params.get("redirect_uri", "")
        # An unknown client or redirect URI gets an error page, not a redirect (RFC 6749 4.1.2.1).
        if params.get("client_id") != self.client_id or redirect_uri not in self.redirect_uris:
            return PlainTextResponse("unknown client or redirect_uri", status_code=400)
        error = self._authorize_error(params)
        if error:
            return _back(redirect_uri, error=error, state=params.get("state"))
        code = secrets.token_urlsafe(24)
        self._grants[code] = Grant(
            client_id=self.client_id,
            redirect_uri=redirect_uri,
            nonce=params.get("nonce"),
            code_challenge=params["code_challenge"],
            user=self.user,
            expires=time.time() + CODE_SECONDS,
        )
        return _back(redirect_uri, code=code, state=params.get("state"))

    def _authorize_error(self, params: dict[str, str]) -> str | None:
        if self.deny:
            return "access_denied"
        if params.get("response_type") != "code":
            return "unsupported_response_type"
        if "openid" not in params.get("scope", "").split():
            return "invalid_scope"
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            return "invalid_request"
        return None

    async def token(self, request: Request) -> Response:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        client_id, secret, method = _client_credentials(request, form)
        self.token_requests.append({**form, "auth_method": method})
        if client_id != self.client_id or not secrets.compare_digest(
            secret.encode(), self.client_secret.encode()
        ):
            return _error("invalid_client", 401)
        if form.get("grant_type") != "authorization_code":
            return _error("unsupported_grant_type")
        grant = self._grants.pop(form.get("code", ""), None)  # a code works once
        if (
            grant is None
            or grant.expires < time.time()
            or grant.client_id != client_id
            or grant.redirect_uri != form.get("redirect_uri")
            or s256(form.get("code_verifier", "")) != grant.code_challenge
        ):
            return _error("invalid_grant")
        return JSONResponse(
            {
                "access_token": secrets.token_urlsafe(24),
                "token_type": "Bearer",
                "expires_in": ID_TOKEN_SECONDS,
                "scope": "openid email",
                "id_token": self.id_token(grant),
            },
            headers={"Cache-Control": "no-store"},
        )

    def id_token(self, grant: Grant) -> str:
        """An ES256 ID token for the grant, with the test's claim overrides applied."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "sub": grant.user.sub,
            "aud": grant.client_id,
            "email": grant.user.email,
            "email_verified": True,
            "iat": now,
            "exp": now + ID_TOKEN_SECONDS,
            "auth_time": now,
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        claims.update(self.claims)
        header = {"alg": ALG, "typ": "JWT", "kid": self.signing_key.kid}
        return jwt.encode(header, claims, self.signing_key, algorithms=[ALG])


def _back(redirect_uri: str, **params: str | None) -> Response:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return RedirectResponse(f"{redirect_uri}?{query}", status_code=302)


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str, str]:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        decoded = base64.b64decode(header[6:]).decode()
        client_id, _, secret = decoded.partition(":")
        return client_id, secret, "client_secret_basic"
    return form.get("client_id", ""), form.get("client_secret", ""), "client_secret_post"


def _error(error: str, status: int = 400) -> Response:
    return JSONResponse({"error": error}, status_code=status, headers={"Cache-Control": "no-store"})
