"""HTTP entry points of the authorization server: token, metadata and JWKS."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from hub.auth.deps import REALM, SessionDep, SettingsDep, SigningKeysDep, get_dpop
from hub.auth.dpop import UseDPoPNonce
from hub.auth.keys import JWKS_MAX_AGE_SECONDS
from hub.auth.server import metadata, token_endpoint, token_request
from hub.db import utcnow
from hub.errors import HubError, MalformedRequest

router = APIRouter(tags=["oauth"])

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


@router.post(
    "/oauth/token",
    name="oauth_token",
    openapi_extra=_TOKEN_FORM,
    responses={
        400: {
            "description": "invalid_request, invalid_grant or invalid_scope (RFC 6749 §5.2)",
            "content": _PROBLEM,
        },
        401: {"description": "invalid_client", "content": _PROBLEM},
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
    except HubError as exc:
        session.rollback()
        return _oauth_error(exc, request)
    headers = dict(NO_STORE)
    nonce = dpop.fresh_nonce(now.timestamp())
    if nonce is not None:  # RFC 9449 §8.2: the nonce for the client's next token request
        headers["DPoP-Nonce"] = nonce
    return JSONResponse(answer, headers=headers)


def _oauth_error(exc: HubError, request: Request) -> JSONResponse:
    headers = dict(NO_STORE)
    if exc.status == 401:
        # RFC 6749 §5.2: a 401 for invalid_client carries the scheme the client should use.
        headers["WWW-Authenticate"] = f'Basic realm="{REALM}"'
    if isinstance(exc, UseDPoPNonce):
        headers["DPoP-Nonce"] = exc.nonce
    problem: dict[str, Any] = exc.to_problem(instance=request.url.path)
    return JSONResponse(
        problem, status_code=exc.status, headers=headers, media_type="application/problem+json"
    )


@router.get("/.well-known/oauth-authorization-server", name="oauth_metadata")
def authorization_server_metadata(settings: SettingsDep) -> dict[str, Any]:
    """The RFC 8414 metadata document."""
    return metadata(settings)


@router.get("/.well-known/jwks.json", name="oauth_jwks")
def jwks(session: SessionDep, keys: SigningKeysDep) -> JSONResponse:
    """The public keys that verify our access tokens."""
    cache = {"Cache-Control": f"public, max-age={JWKS_MAX_AGE_SECONDS}"}
    return JSONResponse(keys.public_jwks(session), headers=cache)
