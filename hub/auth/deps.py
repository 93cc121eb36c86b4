"""FastAPI dependencies of the auth feature, read from what the app factory put in app.state.

The app factory sets ``app.state.settings``, ``app.state.session_factory``,
``app.state.signing_keys`` and ``app.state.token_validator`` in its lifespan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, cast

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from hub.auth.keys import SigningKeys
from hub.auth.tokens import Principal, TokenValidator
from hub.db import unit_of_work
from hub.errors import Unauthenticated
from hub.settings import Settings

REALM = "talent-hub"


def get_settings(request: Request) -> Settings:
    """The hub's settings."""
    return cast(Settings, request.app.state.settings)


def get_signing_keys(request: Request) -> SigningKeys:
    """The access-token signing keys."""
    return cast(SigningKeys, request.app.state.signing_keys)


def get_token_validator(request: Request) -> TokenValidator:
    """The bearer-token validator."""
    return cast(TokenValidator, request.app.state.token_validator)


def get_session(request: Request) -> Iterator[Session]:
    """A session committed after the route returns, rolled back if it raises."""
    factory = cast(sessionmaker[Session], request.app.state.session_factory)
    with unit_of_work(factory) as session:
        yield session


# scope="function": commit before the response is sent, so a failed commit is a 500
# rather than a success answer for work that was lost.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SigningKeysDep = Annotated[SigningKeys, Depends(get_signing_keys)]


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer`` header (RFC 6750 §2.1)."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        # RFC 6750 §3.1: a request without credentials gets a challenge but no error code.
        raise Unauthenticated("missing bearer token", www_authenticate=f'Bearer realm="{REALM}"')
    return token.strip()


def require_scope(scope: str) -> Callable[[Request], Principal]:
    """A dependency that authenticates the bearer token and requires the scope."""

    def dependency(request: Request) -> Principal:
        token = bearer_token(request.headers.get("authorization"))
        principal = get_token_validator(request).validate(token)
        principal.require(scope)
        return principal

    return dependency
