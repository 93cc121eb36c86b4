"""Applying the rate limits at the gateway: token endpoint, partner API and person lookups.

- ``/oauth/token``: a source address with too many failed requests gets 429 before anything
  else (behind a load balancer uvicorn must see the client's address: ``HUB_FORWARDED_ALLOW_IPS``);
  a client id gets at most ``rate_limit_token_per_minute`` tokens (only successful requests
  count, so nobody can use up another client's allowance by guessing its id).
- ``/v1/…``: each partner's calls are counted once its token is validated (``MeteredValidator``
  wraps the token validator). Bearer tokens are signed, so guessing them is hopeless and a
  401 there does not count against the source address.
- Person lookups (every route with a ``person_id`` path parameter) that end in 404 are
  counted per partner; past the threshold its person lookups get 429 for the rest of the
  window, and the audit trail gets ``security.enumeration_suspected`` once per window.

Every refusal is a 429 problem document with ``Retry-After``.
"""

from __future__ import annotations

import base64
import json
import logging
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.api.limits import send_problem
from hub.api.problems import problem_response
from hub.api.ratelimit import Limits
from hub.audit.service import record as audit
from hub.db import unit_of_work
from hub.errors import TooManyRequests

log = logging.getLogger(__name__)

TOKEN_PATH = "/oauth/token"  # noqa: S105
API_PREFIX = "/v1/"
#: The path parameter of every route that looks a person up (timeline, consents, ...).
PERSON_PARAM = "person_id"
#: Statuses of a token request that count as a failed authentication of its source address.
TOKEN_FAILURES = frozenset({400, 401})
_NO_STORE = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]


@dataclass
class Call:
    """One partner API request as the throttle sees it; the validator fills in the partner."""

    scope: Scope
    partner_id: str | None = None

    @property
    def person_lookup(self) -> bool:
        """True for routes that take a person id (known once the router matched the path)."""
        return PERSON_PARAM in self.scope.get("path_params", {})


_CALL: ContextVar[Call | None] = ContextVar("hub_api_call", default=None)


def install(app: FastAPI, limits: Limits) -> None:
    """Count validated tokens, answer 429s, and add the throttle middleware."""
    app.state.limits = limits
    app.state.token_validator = MeteredValidator(app.state.token_validator, limits)
    app.add_exception_handler(TooManyRequests, too_many_requests)  # type: ignore[arg-type]
    app.add_middleware(Throttle, limits=limits)


async def too_many_requests(request: Request, exc: TooManyRequests) -> JSONResponse:
    """A 429 problem document with ``Retry-After``."""
    return problem_response(
        exc.to_problem(request.url.path), {"Retry-After": exc.retry_after_header}
    )


class MeteredValidator:
    """The token validator, counting each validated API call against its partner's limits."""

    def __init__(self, inner: Any, limits: Limits) -> None:
        self._inner = inner
        self._limits = limits

    def validate(self, token: str, *args: Any, **kwargs: Any) -> Any:
        """The inner validator's principal; TooManyRequests when its partner is over a limit."""
        principal = self._inner.validate(token, *args, **kwargs)
        call = _CALL.get()
        if call is not None and call.partner_id is None:
            call.partner_id = principal.partner_id
            self._limits.charge_api(principal.partner_id)
            if call.person_lookup:
                self._limits.check_person_lookups(principal.partner_id)
        return principal

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class Throttle:
    """ASGI middleware for the token endpoint and the partner API (see the module docstring)."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == TOKEN_PATH and scope["method"] == "POST":
            await self._token(scope, receive, send)
        elif path.startswith(API_PREFIX):
            await self._api(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _token(self, scope: Scope, receive: Receive, send: Send) -> None:
        address = _address(scope)
        wait = self.limits.failures.wait(address, self.limits.clock())
        if wait:
            err = TooManyRequests("too many failed token requests", retry_after=wait)
            await _refuse(scope, send, err)
            return
        body = await read_body(receive)
        client_id = claimed_client_id(_header(scope, b"authorization"), body)
        wait = self.limits.tokens.wait(client_id, self.limits.clock()) if client_id else 0.0
        if wait:
            err = TooManyRequests("token rate limit of this client reached", retry_after=wait)
            await _refuse(scope, send, err)
            return
        status, headers = await _run(self.app, scope, replay(body, receive), send)
        now = self.limits.clock()
        if status == 200 and client_id:
            self.limits.tokens.take(client_id, now)
        elif status in TOKEN_FAILURES and b"dpop-nonce" not in headers:
            # A use_dpop_nonce answer (RFC 9449 §8) asks the client to retry: not a failure.
            self.limits.failures.take(address, now)

    async def _api(self, scope: Scope, receive: Receive, send: Send) -> None:
        call = Call(scope)
        reset = _CALL.set(call)
        try:
            status, _ = await _run(self.app, scope, receive, send)
        finally:
            _CALL.reset(reset)
        if status == 404 and call.person_lookup and call.partner_id:
            await self._missed(scope, call.partner_id, self.limits.clock())

    async def _missed(self, scope: Scope, partner_id: str, now: float) -> None:
        if self.limits.enumeration.missed(partner_id, now):
            factory = scope["app"].state.session_factory
            await run_in_threadpool(record_enumeration, factory, partner_id, self.limits)


def record_enumeration(factory: sessionmaker[Session], partner_id: str, limits: Limits) -> None:
    """The audit record of a partner whose person lookups were throttled (own transaction)."""
    watch = limits.enumeration
    details = {"partner_id": partner_id, "not_found": watch.limit, "window_seconds": watch.window}
    log.warning("security.enumeration_suspected", extra=details)
    try:
        with unit_of_work(factory) as session:
            audit(
                session,
                actor_type="system",
                actor="gateway",
                action="security.enumeration_suspected",
                details=details,
            )
    except Exception as exc:  # the throttle works even when the audit write fails
        log.error("audit.enumeration_not_recorded", extra={"error": repr(exc)})


def claimed_client_id(authorization: str | None, body: bytes) -> str | None:
    """The client id a token request claims (not yet verified), if it names one."""
    if authorization and authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except ValueError:
            return None
        return unquote_plus(decoded.partition(":")[0]) or None
    try:
        form = dict(parse_qsl(body.decode(), max_num_fields=20))
    except ValueError:
        return None
    return form.get("client_id") or _assertion_subject(form.get("client_assertion", ""))


def _assertion_subject(assertion: str) -> str | None:
    try:
        payload = assertion.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return sub if isinstance(sub, str) and sub else None


async def read_body(receive: Receive) -> bytes:
    """The whole request body (the BodyLimit middleware outside bounds its size)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive channel that gives ``body`` once, then whatever the client sends next."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return again


async def _run(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> tuple[int, set[bytes]]:
    """Call the app; its status code (0 if it answered nothing) and response header names."""
    status = 0
    names: set[bytes] = set()

    async def watching(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            names.update(name.lower() for name, _ in message.get("headers", []))
        await send(message)

    await app(scope, receive, watching)
    return status, names


async def _refuse(scope: Scope, send: Send, err: TooManyRequests) -> None:
    headers = [(b"retry-after", err.retry_after_header.encode())]
    if scope["path"] == TOKEN_PATH:
        headers += _NO_STORE  # RFC 6749 §5.1
    await send_problem(scope, send, err, headers)


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None
