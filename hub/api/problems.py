"""RFC 9457 problem documents: the one place where errors become HTTP answers."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from hub.audit.service import record as audit
from hub.crypto.errors import PersonErased
from hub.db import unit_of_work
from hub.errors import PROBLEM_BASE, Conflict, HubError, MalformedRequest

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

#: An RFC 9457 problem document; invalid input adds ``errors`` (one per field) or ``field``.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "field": {"type": "string", "description": "The input the problem is about"},
    },
    "required": ["type", "title", "status"],
    # RFC 9457 §3.2: a problem type may add members (``missing``, ``missing_route``, …).
    "additionalProperties": True,
}
_PROBLEM_SCHEMA = {"content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}}

PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": text, **_PROBLEM_SCHEMA}
    for code, text in {
        400: "Malformed request",
        401: "Missing or invalid access token",
        403: "Not allowed",
        404: "Not found (or not yours)",
        409: "Conflict",
        413: "Body too large",
        422: "Invalid input",
        429: "Rate limit or quota used up",
    }.items()
}


def problem_response(doc: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON response with the problem media type."""
    return JSONResponse(doc, status_code=doc["status"], media_type=PROBLEM_JSON, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers that render every error as a problem document."""
    app.add_exception_handler(HubError, hub_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(PersonErased, _person_erased)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)


async def _person_erased(request: Request, exc: PersonErased) -> JSONResponse:
    """A request that would seal new data for an erased person: theirs is gone for good."""
    return await hub_error(request, Conflict("the person's data was erased; nothing new is kept"))


async def hub_error(request: Request, exc: HubError) -> JSONResponse:
    doc = exc.to_problem(request.url.path)
    # RFC 6750 §3: the challenge belongs in the header, not in the body.
    challenge = doc.pop("www_authenticate", None)
    headers = None
    if exc.status == 401:
        headers = {"WWW-Authenticate": challenge or _default_challenge(request)}
    if exc.status in DENIALS:
        await run_in_threadpool(_audit_denial, request, exc.status)
    return problem_response(doc, headers)


#: Refusals the data protection officer wants to see: probing shows up as these.
DENIALS = frozenset({401, 403, 404})


def _audit_denial(request: Request, status: int) -> None:
    """Record a refused call in its own transaction (the request's own was rolled back)."""
    route = request.scope.get("route")
    try:
        with unit_of_work(request.app.state.session_factory) as session:
            audit(
                session,
                actor_type="system",
                actor="gateway",
                action="api.denied",
                details={
                    "method": request.method,
                    "status": status,
                    "route": getattr(route, "path", "(no route)"),
                },
            )
    except Exception as exc:  # the answer to the caller must not depend on the audit write
        log.error("audit.denial_not_recorded", extra={"error": repr(exc)})


def _default_challenge(request: Request) -> str:
    if request.url.path.startswith("/oauth/"):
        return 'Basic realm="talent-hub"'
    return 'Bearer realm="talent-hub"'


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [
        {"field": ".".join(str(p) for p in e["loc"] if p != "body") or "body", "message": e["msg"]}
        for e in exc.errors()
    ]
    if any(e.get("type") == "json_invalid" for e in exc.errors()):
        err: HubError = MalformedRequest("request body is not valid JSON")
        return problem_response(err.to_problem(request.url.path))
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    doc = {
        "type": PROBLEM_BASE + "invalid-input",
        "title": "Invalid input",
        "status": 422,
        "detail": detail,
        "instance": request.url.path,
        "errors": errors,
    }
    return problem_response(doc)


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    slugs = {404: "not-found", 405: "method-not-allowed"}
    doc = {
        "type": PROBLEM_BASE + slugs.get(exc.status_code, "http-error"),
        "title": str(exc.detail),
        "status": exc.status_code,
        "detail": str(exc.detail),
        "instance": request.url.path,
    }
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request)
    return problem_response(doc, headers or None)


def allowed_methods(request: Request) -> str:
    """Every method some route serves at the request's path (RFC 9110 §15.5.6).

    Starlette's 405 names the methods of the first route matching the path only, so
    ``GET /v1/referrals`` and ``POST /v1/referrals`` would each hide the other. Each method
    is tried against the app's routes as the router itself would (included routers too).
    """
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]
    return ", ".join(allowed)


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("api.unexpected_error", extra={"path": request.url.path})
    doc = {
        "type": PROBLEM_BASE + "internal-error",
        "title": "Internal error",
        "status": 500,
        "detail": (
            "the request could not be completed; repeat a write with the same "
            "Idempotency-Key, which answers it as stored if it was"
        ),
        "instance": request.url.path,
    }
    return problem_response(doc)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("api.database_unavailable", extra={"path": request.url.path, "error": repr(exc)})
    doc = {
        "type": PROBLEM_BASE + "temporarily-unavailable",
        "title": "Temporarily unavailable",
        "status": 503,
        # Not "nothing was stored": a connection lost during a COMMIT leaves it unknown.
        "detail": (
            "the database is busy or unreachable; retry. A write may have been stored: "
            "repeat it with the same Idempotency-Key, which then answers as stored"
        ),
        "instance": request.url.path,
    }
    return problem_response(doc, {"Retry-After": "1"})
