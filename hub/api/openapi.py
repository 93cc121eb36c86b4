"""The gateway's OpenAPI document: FastAPI's, plus what only the running code knows.

FastAPI derives paths, parameters and schemas from the routes. This adds, from the same
routes and middleware rather than from a hand list: the OAuth 2.0 security scheme and each
operation's scope (read from its ``require_scope`` dependency), the rate limits' 429 on the
paths the throttle meters, the error answers each operation can really give, readable
operation ids, the server, and examples that code generators and linters look for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from hub.api.problems import PROBLEM_JSON, PROBLEM_RESPONSES, PROBLEM_SCHEMA
from hub.api.throttle import API_PREFIX, TOKEN_PATH
from hub.auth.deps import required_scope
from hub.auth.scopes import SCOPE_DESCRIPTIONS, SCOPES
from hub.errors import (
    Conflict,
    HubError,
    InsufficientScope,
    InvalidInput,
    MalformedRequest,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    Unauthenticated,
)

OAUTH2 = "OAuth2"
DPOP = "DPoP"
SECURITY_SCHEMES: dict[str, Any] = {
    OAUTH2: {
        "type": "oauth2",
        "description": (
            "OAuth 2.0 client credentials at `/oauth/token`. Clients authenticate with "
            "`private_key_jwt` (RFC 7523: a short-lived ES256 or PS256 client assertion) or, "
            "where the partner is registered for it, `client_secret_basic`. Access tokens are "
            "signed JWTs (`typ: at+jwt`). A token request with a `DPoP` proof gets a token "
            "bound to the proof's key (RFC 9449), to be sent as `Authorization: DPoP <token>` "
            "with a fresh proof on every call; an unbound token is sent as `Bearer`."
        ),
        "flows": {
            "clientCredentials": {
                "tokenUrl": TOKEN_PATH,
                "scopes": {scope: SCOPE_DESCRIPTIONS[scope] for scope in SCOPES},
            }
        },
    },
    DPOP: {
        "type": "apiKey",
        "in": "header",
        "name": "DPoP",
        "description": (
            "A DPoP proof JWT (RFC 9449 §4) for this request's method and URL, signed by the "
            "key a DPoP-bound access token names; required with `Authorization: DPoP`."
        ),
    },
}
SERVERS = [{"url": "/", "description": "The gateway that serves this document"}]

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_RETRY_AFTER = {
    "description": "Seconds to wait before calling again (RFC 9110 §10.2.3)",
    "schema": {"type": "integer", "minimum": 1},
}
_WWW_AUTHENTICATE = {
    "description": "The schemes to authenticate with: Bearer and DPoP (RFC 6750, RFC 9449)",
    "schema": {"type": "string"},
}
_LOCATION = {"description": "Where the created resource can be read", "schema": {"type": "string"}}

_REFERRAL_ID = "0192f1c4-7a5e-7c3d-9b1a-5f0e8d2c4a61"
_PERSON_ID = "p_K-TiwX6ohUKCOE2c4nmh0Q"
#: What each error answer looks like, made by the same classes that make the real ones.
PROBLEM_EXAMPLES: dict[int, HubError] = {
    400: MalformedRequest("the body is not valid JSON"),
    401: Unauthenticated("the access token has expired"),
    403: InsufficientScope("the token lacks the scope referrals:write"),
    404: NotFound(f"no referral {_REFERRAL_ID}"),
    409: Conflict("the referral is completed and takes no further status"),
    413: PayloadTooLarge("the body is larger than 65536 bytes"),
    422: InvalidInput("person: give an id, a partner_reference or a family_name", field="person"),
    429: TooManyRequests("100 requests per minute for this client", retry_after=12),
}
_HISTORY_ENTRY = {
    "status": "requested",
    "business_status": None,
    "reason": None,
    "outcome": None,
    "set_by": "ude",
    "occurred_at": "2026-12-03T09:14:05Z",
    "recorded_at": "2026-12-03T09:14:05Z",
    "event_id": "0192f1c4-7a60-7b21-8c55-2d9e0f4b7a13",
}
_REFERRAL = {
    "id": _REFERRAL_ID,
    "type": "residence.student",
    "requester": "ude",
    "performer": "amt",
    "person_id": _PERSON_ID,
    "status": "requested",
    "business_status": None,
    "payload": {"programme": "M.Sc. Computer Engineering", "admission_date": "2027-04-01"},
    "created_at": "2026-12-03T09:14:05Z",
    "updated_at": "2026-12-03T09:14:05Z",
    "history": [_HISTORY_ENTRY],
    "holds": [],
    "clocks": [],
}
#: Success answers of the main operations, by operation id and status code.
RESPONSE_EXAMPLES: dict[str, dict[str, Any]] = {
    "createReferral": {"202": {"id": _REFERRAL_ID, "status": "requested", "person_id": _PERSON_ID}},
    "readReferral": {"200": _REFERRAL},
    "changeStatus": {
        "200": {
            **_REFERRAL,
            "status": "accepted",
            "history": [
                _HISTORY_ENTRY,
                {**_HISTORY_ENTRY, "status": "accepted", "set_by": "amt"},
            ],
        }
    },
}


def install(app: FastAPI) -> None:
    """Serve the refined document as the app's OpenAPI (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            refine(FastAPI.openapi(app), app)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def refine(spec: dict[str, Any], app: FastAPI) -> None:
    """Add security, servers, error answers, headers, ids and examples to FastAPI's document."""
    spec["servers"] = SERVERS
    components = spec.setdefault("components", {})
    components["securitySchemes"] = SECURITY_SCHEMES
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for route in api_routes(app):
        for method in sorted((route.methods or set()) - {"HEAD"}):
            operation = spec["paths"][route.path_format][method.lower()]
            _refine_operation(operation, route, method)
            _examples_in_paths(operation, components["schemas"])
            _response_examples(operation)
    if "#/components/schemas/HTTPValidationError" not in repr(spec["paths"]):
        for name in ("HTTPValidationError", "ValidationError"):
            components["schemas"].pop(name, None)


def api_routes(app: FastAPI) -> Iterator[APIRoute]:
    """The app's API routes in the document, included routers resolved to their full paths."""
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute) and context.include_in_schema:
            yield context  # type: ignore[misc]  # a route context reads like its APIRoute


def operation_id(name: str) -> str:
    """``create_referral`` -> ``createReferral``."""
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


def route_scope(route: APIRoute) -> str | None:
    """The scope the route's token must carry, from its dependencies."""
    scopes = {s for call in _calls(route.dependant) if (s := required_scope(call)) is not None}
    if len(scopes) > 1:
        raise AssertionError(f"{route.path_format} requires several scopes: {sorted(scopes)}")
    return next(iter(scopes), None)


def _calls(dependant: Any) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _refine_operation(operation: dict[str, Any], route: APIRoute, method: str) -> None:
    operation["operationId"] = operation_id(route.name)
    scope = route_scope(route)
    # Either scheme's token, with the scope; a DPoP-bound one also needs the DPoP proof.
    operation["security"] = [{OAUTH2: [scope]}, {OAUTH2: [scope], DPOP: []}] if scope else []
    responses = operation["responses"]
    responses.pop("422", None)  # FastAPI's own shape; ours is a problem document
    for code in sorted(error_codes(operation, method, scoped=scope is not None)):
        responses.setdefault(str(code), _problem(code))
    if route.path_format.startswith(API_PREFIX) or route.path_format == TOKEN_PATH:
        too_many = responses.setdefault("429", _problem(429))
        too_many.setdefault("headers", {})["Retry-After"] = _RETRY_AFTER
    for code, response in responses.items():
        problem = response.get("content", {}).get(PROBLEM_JSON)
        if problem is not None and code.isdigit() and int(code) in PROBLEM_EXAMPLES:
            problem.setdefault("example", PROBLEM_EXAMPLES[int(code)].to_problem())
    if "401" in responses and scope:
        responses["401"].setdefault("headers", {})["WWW-Authenticate"] = _WWW_AUTHENTICATE


def error_codes(operation: dict[str, Any], method: str, *, scoped: bool) -> set[int]:
    """The problem answers an operation of the partner API can give (none for other routes).

    400 and 413: a JSON body that does not parse or is too large; 401 and 403: a token that
    is missing, invalid or lacks the scope; 404: a path id that is not there or not yours;
    409: a write that meets the state (illegal transition, reused Idempotency-Key, erased
    person); 422: input the schema or a rule of the hub refuses. No operation reads a body in
    another media type, so none answers 415.
    """
    if not scoped:
        return set()
    body = "requestBody" in operation
    parameters = operation.get("parameters", [])
    codes = {401, 403}
    if body:
        codes |= {400, 409, 413}
    if any(p["in"] == "path" for p in parameters):
        codes.add(404)
    if body or parameters:
        codes.add(422)
    return codes


def _problem(code: int) -> dict[str, Any]:
    text = PROBLEM_RESPONSES[code]["description"]
    example = PROBLEM_EXAMPLES[code].to_problem()
    return {
        "description": text,
        "content": {PROBLEM_JSON: {"schema": _PROBLEM_REF, "example": example}},
    }


def _response_examples(operation: dict[str, Any]) -> None:
    for code, example in RESPONSE_EXAMPLES.get(operation["operationId"], {}).items():
        content = operation["responses"][code]["content"]["application/json"]
        content["example"] = example


def _examples_in_paths(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    # Generators and linters look for examples at the media type, not in the component.
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if body is None or "example" in body or "examples" in body:
        return
    name = body["schema"].get("$ref", "").rpartition("/")[2]
    examples = schemas.get(name, {}).get("examples", [])
    if examples:
        body["examples"] = {f"example{i + 1}": {"value": v} for i, v in enumerate(examples)}
