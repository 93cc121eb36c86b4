"""OAuth client helper for partner systems talking to the hub (also used by our simulators).

authlib's ``private_key_jwt`` signs RS256 assertions valid for an hour by default; the hub
accepts ES256/PS256/EdDSA assertions of at most 60 seconds, so this helper sets both.
"""

from __future__ import annotations

from typing import Any

from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from joserfc.jwk import ECKey

ASSERTION_LIFETIME_SECONDS = 60


class ShortLivedPrivateKeyJWT(PrivateKeyJWT):
    """``private_key_jwt`` with ES256 and a 60-second assertion, a fresh ``jti`` each time."""

    alg = "ES256"

    def sign(self, auth: Any, token_endpoint: str) -> str:
        """A client assertion for one token request."""
        return str(
            private_key_jwt_sign(
                auth.client_secret,
                client_id=auth.client_id,
                token_endpoint=token_endpoint,
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
