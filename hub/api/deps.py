"""Request-scoped dependencies shared by the partner API routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Table
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from hub import staged
from hub.audit.service import record_at_commit, record_rows
from hub.auth import cache as auth_cache
from hub.auth.deps import SessionDep as SessionDep  # one definition: commit before answering
from hub.auth.deps import (
    Staged,
    auth_cache_of,
    authenticate,
    discard,
    memory_or_thread,
    new_session,
    requiring,
)
from hub.auth.tokens import Principal
from hub.errors import Unauthenticated
from hub.partners.models import Partner
from hub.partners.service import active_partner_to_read
from hub.policy.model import Policy
from hub.settings import Settings
from schemas.catalogue import Catalogue

# The dependencies that only read app.state are coroutines: FastAPI runs a plain function
# dependency in the thread pool, a hand-over that costs more than the read.


async def settings_of(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


async def catalogue_of(request: Request) -> Catalogue:
    """The referral-type catalogue the app was started with."""
    catalogue: Catalogue = request.app.state.catalogue
    return catalogue


def caller(scope: str) -> Callable[..., Awaitable[Partner]]:
    """A dependency giving the calling partner, from a token that carries ``scope``."""

    # The token is checked here rather than in a dependency of its own: each dependency
    # costs FastAPI's machinery more than the check from memory does.
    async def dependency(request: Request, session: SessionDep) -> Partner:
        return await memory_or_thread(_called, session, request, scope)

    return requiring(scope, dependency)


@dataclass(frozen=True)
class Call:
    """A partner's write call, authenticated: the partner, and what the call staged (its
    audit record) for the transaction that will hold the write (``commit_together``)."""

    partner: Partner
    rows: Staged


def writing_caller(scope: str) -> Callable[..., Awaitable[Call]]:
    """Like :func:`caller`, for a route whose writes commit together with other requests'
    (hub.commits): the request keeps no session of its own.

    In the steady state the token and the partner are in the gateway's memory and no session
    is made at all; a miss is read in a session ended before the route runs. A session
    dependency would cost FastAPI's machinery for a generator (an exit stack, a shielded
    exit) on every call, for a session the write never uses.
    """

    async def dependency(request: Request) -> Call:
        partner = _called_from_memory(request, scope)
        if partner is not None:
            return Call(partner, [call_record(request, partner.id)])
        session = new_session(request.app.state)
        try:
            partner = await run_in_threadpool(_called, session, request, scope)
        except BaseException:
            await discard(session)
            raise
        rows = staged.take(session)
        await discard(session)  # what the miss read; the staged rows were taken
        return Call(partner, rows)

    return requiring(scope, dependency)


def _called_from_memory(request: Request, scope: str) -> Partner | None:
    """The calling partner if its token and the partner are in the gateway's memory; None
    (nothing read, nothing staged) if either would have to be read."""
    cache = auth_cache_of(request.app.state)
    if cache is None:
        return None
    try:
        with auth_cache.from_memory():
            principal = authenticate(request, scope)
            partner = cache.partner(principal.partner_id)
    except auth_cache.WouldLoad:
        return None
    return _active(partner if partner is not None and partner.active else None)


def _called(session: Session, request: Request, scope: str) -> Partner:
    # The token and the partner come from the cache (a miss raises WouldLoad first, before
    # any effect); the audit entry is only staged in the session, written at commit.
    partner = partner_of(session, authenticate(request, scope))
    audit_call(session, request, partner.id)
    return partner


def audit_call(session: Session, request: Request, partner_id: str) -> None:
    """Record a partner's API call in the request's own transaction (kept only if it commits)."""
    staged.stage(session, *call_record(request, partner_id))


def call_record(request: Request, partner_id: str) -> tuple[Table, list[dict[str, Any]]]:
    """The audit record of a partner's API call, to be staged in the transaction it records."""
    return record_rows(
        actor_type="partner",
        actor=partner_id,
        action="api.call",
        details={"method": request.method, "route": route_of(request)},
    )


def route_of(request: Request) -> str:
    """The path template of the route that took the request, else the request's path."""
    route = request.scope.get("route")
    # Not getattr's default: that would build the request's URL on every call.
    return str(route.path) if route is not None else request.url.path


def audit_read(
    session: Session,
    request: Request,
    partner_id: str,
    touched: Iterable[tuple[str | None, str | None]],
) -> None:
    """Record which persons, and which of their referrals, a partner's read returned.

    ``touched`` holds (person id, referral id) pairs; a read that returned no person records
    nothing beyond its ``api.call``. One ``api.read`` record per person, with the person in
    the indexed ``person_id`` column and the referral ids in ``details``: "who read person X"
    (the Art. 15 report, the data protection officer) is then one index lookup, where ids in a
    JSON list would need a scan of every call on both SQLite and PostgreSQL. The records are
    only staged in the session, like the call's own, and written at commit.
    """
    people: dict[str, set[str]] = {}
    for person_id, referral_id in touched:
        if person_id:
            people.setdefault(person_id, set())
            if referral_id:
                people[person_id].add(referral_id)
    route = route_of(request)
    for person_id, referral_ids in sorted(people.items()):
        record_at_commit(
            session,
            actor_type="partner",
            actor=partner_id,
            action="api.read",
            person_id=person_id,
            details={"method": request.method, "route": route, "referrals": sorted(referral_ids)},
        )


def partner_of(session: Session, principal: Principal) -> Partner:
    """The active partner a validated token speaks for (from the gateway's cache, no query)."""
    return _active(active_partner_to_read(session, principal.partner_id))


def _active(partner: Partner | None) -> Partner:
    """The token's partner; none (absent or deactivated) refuses the token."""
    if partner is None:
        raise Unauthenticated("the token's partner is not active", error="invalid_token")
    return partner


def configured(request: Request) -> tuple[Settings, Catalogue, Policy]:
    """The app's settings, catalogue and route policy, for a route on the hot path: read here
    they cost nothing, where a dependency each costs FastAPI's machinery."""
    state = request.app.state
    return state.settings, state.catalogue, state.policy


async def policy_of(request: Request) -> Policy:
    """The route policy the app was started with."""
    policy: Policy = request.app.state.policy
    return policy


SettingsDep = Annotated[Settings, Depends(settings_of)]
PolicyDep = Annotated[Policy, Depends(policy_of)]
CatalogueDep = Annotated[Catalogue, Depends(catalogue_of)]
