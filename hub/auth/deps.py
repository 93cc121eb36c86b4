"""FastAPI dependencies of the auth feature, read from what the app factory put in app.state.

The app factory sets ``app.state.settings``, ``app.state.session_factory``,
``app.state.signing_keys`` and ``app.state.token_validator`` in its lifespan.
"""

from __future__ import annotations

import functools
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, TypeVar, cast

import anyio
import anyio.to_thread
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Table
from sqlalchemy.orm import Session, sessionmaker

from hub import staged
from hub.auth import cache as auth_cache
from hub.auth import dpop as dpop_module
from hub.auth.dpop import DPoP
from hub.auth.keys import SigningKeys
from hub.auth.tokens import Principal, TokenValidator
from hub.commits import CommitGroup
from hub.db import finish
from hub.errors import Unauthenticated
from hub.people.service import references_late
from hub.settings import Settings

T = TypeVar("T")
REALM = "talent-hub"
# RFC 9449 §7.2: a resource server taking both schemes challenges with both.
CHALLENGE = (
    f'Bearer realm="{REALM}", DPoP realm="{REALM}", algs="{" ".join(dpop_module.DPOP_ALGS)}"'
)


def get_settings(request: Request) -> Settings:
    """The hub's settings."""
    return cast(Settings, request.app.state.settings)


def get_signing_keys(request: Request) -> SigningKeys:
    """The access-token signing keys."""
    return cast(SigningKeys, request.app.state.signing_keys)


def get_token_validator(request: Request) -> TokenValidator:
    """The bearer-token validator."""
    return cast(TokenValidator, request.app.state.token_validator)


def get_dpop(request: Request) -> DPoP:
    """DPoP proof checking and nonces, made on first use (every instance shares the nonce key)."""
    dpop = getattr(request.app.state, "dpop", None)
    if dpop is None:
        dpop = request.app.state.dpop = DPoP(get_settings(request))
    return cast(DPoP, dpop)


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session committed after the route returns, rolled back if it raises.

    It carries the gateway's partner cache, so the partners a request names cost no query.
    A coroutine: making a session does no I/O, so only its end goes to the thread pool (a
    plain generator would cost a hand-over to a thread on entry and another on exit).
    """
    session = new_session(request.app.state)
    try:
        yield session
    except BaseException:
        await discard(session)
        raise
    await anyio.to_thread.run_sync(functools.partial(finish, session, commit=True))


def new_session(state: Any) -> Session:
    """A session of the app whose ``app.state`` is ``state``, with the gateway's partner cache."""
    factory = cast(sessionmaker[Session], state.session_factory)
    session = factory()
    cache = auth_cache_of(state)
    if cache is not None:
        session.info[auth_cache.SESSION_KEY] = cache
    return session


def auth_cache_of(state: Any) -> auth_cache.AuthCache | None:
    """The gateway's cache of checked tokens, partners and clients (None without one)."""
    cache = getattr(getattr(state, "token_validator", None), "cache", None)
    return cache if isinstance(cache, auth_cache.AuthCache) else None


#: Rows staged for a transaction (``hub.staged.take``): each table's rows, in order.
Staged = list[tuple[Table, list[dict[str, Any]]]]


async def commit_together(request: Request, rows: Staged, work: Callable[[Session], T]) -> T:
    """``work(shared)`` committed in a transaction shared with other requests' (hub.commits).

    For a route whose database work is one call and whose request holds no session of its
    own (``hub.api.deps.writing_caller``). ``rows``: what the request staged before (the
    call's audit record), written with the work. Without a commit group in the app
    (``HUB_GATEWAY_GROUP_COMMIT=1``) the work runs and commits in a transaction of its own.
    """

    def attempt(shared: Session) -> T:
        for table, staged_rows in rows:
            staged.stage(shared, table, staged_rows)
        return work(shared)

    def unit(shared: Session) -> T:
        # A new person's reference goes with the work's other rows; if it was taken, the
        # work runs again after a rollback (hub.people.service.references_late).
        return references_late(shared, lambda: attempt(shared))

    group: CommitGroup | None = getattr(request.app.state, "commit_group", None)
    if group is None:
        return await run_in_threadpool(_alone, request.app.state, unit)
    return await group.run(unit)


def _alone(state: Any, unit: Callable[[Session], T]) -> T:
    session = new_session(state)
    try:
        result = unit(session)
    except BaseException:
        finish(session, commit=False)
        raise
    finish(session, commit=True)
    return result


async def discard(session: Session) -> None:
    """Close ``session`` without committing: what it began is rolled back, in a thread."""
    if not session.in_transaction():
        session.close()  # nothing began: no connection to give back, no I/O
        return
    # Shielded: a cancelled request still gives its connection back rolled back. On SQLite
    # even a read holds the write lock (BEGIN IMMEDIATE) until it ends.
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(functools.partial(finish, session, commit=False))


# scope="function": commit before the response is sent, so a failed commit is a 500
# rather than a success answer for work that was lost.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SigningKeysDep = Annotated[SigningKeys, Depends(get_signing_keys)]


def access_token(authorization: str | None) -> tuple[str, str]:
    """The scheme (``bearer`` or ``dpop``) and token of an ``Authorization`` header."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() not in ("bearer", "dpop") or not token.strip():
        # RFC 6750 §3.1: a request without credentials gets a challenge but no error code.
        raise Unauthenticated("missing bearer token", www_authenticate=CHALLENGE)
    return scheme.lower(), token.strip()


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer`` header (RFC 6750 §2.1)."""
    scheme, token = access_token(authorization)
    if scheme != "bearer":
        raise Unauthenticated("missing bearer token", www_authenticate=CHALLENGE)
    return token


def require_scope(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that authenticates the access token and requires the scope.

    A DPoP-bound token is accepted only as ``Authorization: DPoP`` with a valid proof of its
    key (RFC 9449 §7); presented as ``Bearer`` it is refused, whoever holds it.
    """

    async def dependency(request: Request) -> Principal:
        return await memory_or_thread(authenticate, request, scope)

    return requiring(scope, dependency)


def requiring(scope: str, dependency: Callable[..., T]) -> Callable[..., T]:
    """Declare that ``dependency`` authenticates a token carrying ``scope`` (for OpenAPI)."""
    _REQUIRED_SCOPES[dependency] = scope
    return dependency


# The OpenAPI document reads each route's scope from its dependency, so the two cannot drift.
_REQUIRED_SCOPES: weakref.WeakKeyDictionary[Callable[..., Any], str] = weakref.WeakKeyDictionary()


def required_scope(dependency: Callable[..., Any]) -> str | None:
    """The scope a dependency made by :func:`require_scope` demands; None for any other."""
    return _REQUIRED_SCOPES.get(dependency)


async def memory_or_thread(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in the event loop if all it reads is in memory, else in a thread.

    The function must raise ``WouldLoad`` (``auth_cache.may_load``) before any effect.
    """
    try:
        with auth_cache.from_memory():
            return function(*args)
    except auth_cache.WouldLoad:
        return await run_in_threadpool(function, *args)


def authenticate(request: Request, scope: str) -> Principal:
    """The principal of the request's access token, which must carry ``scope``; reads the
    database only for a DPoP proof or a token not seen before (``memory_or_thread``)."""
    scheme, token = access_token(request.headers.get("authorization"))
    validator = get_token_validator(request)
    if scheme == "dpop":
        auth_cache.may_load()  # the proof's replay check reads the database
        principal = _dpop_principal(request, validator, token)
    else:
        principal = validator.validate(token)
        if principal.jkt is not None:
            raise dpop_module.challenge("invalid_token", "DPoP-bound token sent as Bearer")
    principal.require(scope)
    return principal


def _dpop_principal(request: Request, validator: TokenValidator, token: str) -> Principal:
    try:
        principal = validator.validate(token)
    except Unauthenticated as exc:  # the same refusal, in the scheme the client used
        raise dpop_module.challenge("invalid_token", exc.detail) from exc
    if principal.jkt is None:
        raise dpop_module.challenge("invalid_token", "token is not DPoP-bound")
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    get_dpop(request).resource_proof(
        cast(sessionmaker[Session], request.app.state.session_factory),
        request.headers.getlist("dpop"),
        method=request.method,
        path=raw_path.decode("latin-1").partition("?")[0],
        access_token=token,
        jkt=principal.jkt,
        now=time.time(),
    )
    return principal
