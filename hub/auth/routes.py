"""HTTP entry points of the authorization server: token, metadata and JWKS."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from hub.auth.deps import REALM, SessionDep, SettingsDep, SigningKeysDep, get_dpop
from hub.auth.dpop import UseDPoPNonce
from hub.auth.keys import JWKS_MAX_AGE_SECONDS
from hub.auth.server import error_response, metadata, token_endpoint, token_request
from hub.db import utcnow
from hub.errors import HubError, MalformedRequest


class OAuthErrorRoute(APIRoute):
    """A route whose refusals are RFC 6749 §5.2 JSON errors instead of problem documents.

    OAuth clients (authlib, oauth4webapi, ...) read ``error`` from an ``application/json``
    body; the partner API under ``/v1/`` keeps RFC 9457. Covers the form parsing too.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def oauth_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except HubError as exc:
                return oauth_error(exc)

        return oauth_handler


router = APIRouter(tags=["oauth"])
token_router = APIRouter(tags=["oauth"], route_class=OAuthErrorRoute)

# RFC 6749 §5.1: token responses must not be cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
MAX_FORM_FIELDS = 20


async def token_form(request: Request) -> dict[str, str]:
    """The urlencoded body of a token request (RFC 6749 §4.4.2), each parameter once."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise MalformedRequest("token requests must be form-encoded", error="invalid_request")
    try:
        body = (await request.body()).decode()
        pairs = parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError as exc:
        raise MalformedRequest("token request body malformed", error="invalid_request") from exc
    form = dict(pairs)
    if len(form) != len(pairs):  # RFC 6749 §3.2: parameters must not repeat
        raise MalformedRequest("token request repeats a parameter", error="invalid_request")
    return form


_PROBLEM = {"application/problem+json": {"schema": {"type": "object"}}}
_OAUTH_ERROR = {
    "application/json": {
        "schema": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {"type": "string"},
                "error_description": {"type": "string"},
                "error_uri": {"type": "string"},
            },
        }
    }
}
_TOKEN_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["grant_type"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["client_credentials"]},
                        "scope": {"type": "string"},
                        "client_assertion_type": {"type": "string"},
                        "client_assertion": {"type": "string"},
                    },
                }
            }
        },
    }
}


@token_router.post(
    "/oauth/token",
    name="oauth_token",
    openapi_extra=_TOKEN_FORM,
    responses={
        400: {
            "description": (
                "invalid_request, unsupported_grant_type, invalid_scope (RFC 6749 §5.2), "
                "invalid_dpop_proof or use_dpop_nonce with a DPoP-Nonce header (RFC 9449)"
            ),
            "content": _OAUTH_ERROR,
        },
        401: {"description": "invalid_client (RFC 6749 §5.2)", "content": _OAUTH_ERROR},
        429: {"description": "too many requests", "content": _PROBLEM},
    },
)
def token(
    request: Request,
    form: Annotated[dict[str, str], Depends(token_form)],
    session: SessionDep,
    settings: SettingsDep,
    keys: SigningKeysDep,
) -> JSONResponse:
    """Issue an access token for the client credentials grant (DPoP-bound with a proof)."""
    dpop = get_dpop(request)
    now = utcnow()
    try:
        answer = token_request(
            session=session,
            keys=keys,
            settings=settings,
            form=form,
            authorization_header=request.headers.get("authorization"),
            token_endpoint_url=token_endpoint(settings),
            now=now,
            dpop=dpop,
            dpop_proofs=request.headers.getlist("dpop"),
        )
    except HubError:
        # The route answers the refusal as a response, so the session would commit: nothing
        # a refused request wrote (a client assertion's jti, a DPoP proof's) may stay.
        session.rollback()
        raise
    headers = dict(NO_STORE)
    nonce = dpop.fresh_nonce(now.timestamp())
    if nonce is not None:  # RFC 9449 §8.2: the nonce for the client's next token request
        headers["DPoP-Nonce"] = nonce
    return JSONResponse(answer, headers=headers)


def oauth_error(exc: HubError) -> JSONResponse:
    """An RFC 6749 §5.2 error response: application/json, never cached."""
    headers = dict(NO_STORE)
    if exc.status == 401:
        # RFC 6749 §5.2 and RFC 9110 §15.5.2: a 401 names the scheme the client should use.
        headers["WWW-Authenticate"] = f'Basic realm="{REALM}"'
    if isinstance(exc, UseDPoPNonce):
        headers["DPoP-Nonce"] = exc.nonce  # RFC 9449 §8: the nonce to put in the next proof
    return JSONResponse(error_response(exc), status_code=exc.status, headers=headers)


router.include_router(token_router)


@router.get("/.well-known/oauth-authorization-server", name="oauth_metadata")
def authorization_server_metadata(settings: SettingsDep) -> dict[str, Any]:
    """The RFC 8414 metadata document."""
    return metadata(settings)


@router.get("/.well-known/jwks.json", name="oauth_jwks")
def jwks(session: SessionDep, keys: SigningKeysDep) -> JSONResponse:
    """The public keys that verify our access tokens."""
    cache = {"Cache-Control": f"public, max-age={JWKS_MAX_AGE_SECONDS}"}
    return JSONResponse(keys.public_jwks(session), headers=cache)
