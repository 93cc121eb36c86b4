"""Signing in to Mein Verfahren with the city's citizen login (OpenID Connect, e.g. BundID
through the city's identity provider): authorization code with PKCE, state and nonce, the
same checks as the staff login (hub.web.oidc).

The provider says who someone is, not whose case they may see. The first time, a client
who signed in there also enters an access code and their birth date once; the hub then
links the login's issuer and subject (as a keyed hash, hub.crypto.blind) to the person,
and later sign-ins need no code. Until then the subject waits in a sealed cookie for ten
minutes.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from hub.audit.service import record
from hub.crypto.blind import digest
from hub.db import insert_if_absent, unit_of_work, utcnow
from hub.errors import NotFound
from hub.portal import sessions
from hub.portal.models import CitizenLink
from hub.portal.pages import PREFIX, SESSION_COOKIE, notice_language, set_cookie
from hub.settings import Settings
from hub.web.oidc import (
    STATE_SECONDS,
    LoginFailed,
    Provider,
    RelyingParty,
    begin,
    code_of,
    exchange,
    seal_key,
    unseal,
    validate_id_token,
)

router = APIRouter(prefix=PREFIX, include_in_schema=False)

STATE_COOKIE = "hub_mv_oidc"
PENDING_COOKIE = "hub_mv_link"
_PENDING_CONTEXT = b"hub citizen link pending v1"
_LOCK = threading.Lock()


def configured(settings: Settings) -> bool:
    """True when the citizen login is switched on."""
    return bool(settings.citizen_oidc_issuer and settings.citizen_oidc_client_id)


def relying_party(settings: Settings) -> RelyingParty:
    """The portal's client at the citizen login; only ``openid``: no name, no e-mail."""
    return RelyingParty(
        client_id=settings.citizen_oidc_client_id or "",
        client_secret=settings.citizen_oidc_client_secret,
        profile=settings.profile,
        leeway=settings.clock_skew_seconds,
        scope="openid",
    )


def _provider(request: Request) -> Provider:
    from connectors.egress import EgressPolicy

    state = request.app.state
    issuer = state.settings.citizen_oidc_issuer
    with _LOCK:
        provider: Provider | None = getattr(state, "citizen_provider", None)
        if provider is None or provider.issuer != issuer:
            provider = Provider(issuer, EgressPolicy.for_profile(state.settings.profile))
            state.citizen_provider = provider
        return provider


@router.get("/buergerkonto")
def citizen_start(request: Request) -> Response:
    """Send the browser to the citizen login."""
    settings: Settings = request.app.state.settings
    if not configured(settings):
        raise NotFound("the citizen login is not configured")
    from hub.portal.routes import start_page

    try:
        metadata = _provider(request).metadata()
    except LoginFailed:
        return start_page(request, message="citizen.unavailable", status_code=503)
    url, sealed = begin(
        request, relying_party(settings), metadata, callback="citizen_callback", next=PREFIX + "/"
    )
    response = RedirectResponse(url, status_code=303)
    set_cookie(request, response, STATE_COOKIE, sealed, max_age=STATE_SECONDS)
    return response


@router.get("/buergerkonto/antwort", name="citizen_callback")
def citizen_callback(request: Request) -> Response:
    """Check the answer; open the linked case, or ask once for the code to link it."""
    settings: Settings = request.app.state.settings
    if not configured(settings):
        raise NotFound("the citizen login is not configured")
    from hub.portal.routes import signed_in, start_page

    try:
        value = request.cookies.get(STATE_COOKIE)
        flow = unseal(seal_key(request), value, now=time.time()) if value else None
        if flow is None:
            raise LoginFailed("state_missing_or_expired", status=400)
        code = code_of(request, flow)
        provider = _provider(request)
        rp = relying_party(settings)
        id_token = exchange(rp, provider.metadata(), flow, code)
        claims = validate_id_token(provider, rp, id_token, nonce=flow.nonce)
    except LoginFailed as failure:
        _refused(request, failure.reason)
        message = "citizen.unavailable" if failure.status == 503 else "citizen.failed"
        response = start_page(request, message=message, status_code=failure.status)
        response.delete_cookie(STATE_COOKIE, path=PREFIX)
        return response
    now = utcnow()
    with unit_of_work(request.app.state.session_factory) as session:
        subject = subject_hash(session, claims)
        link = session.get(CitizenLink, subject)
        token = None
        if link is not None:
            token = sessions.sign_in(
                session,
                replacing=request.cookies.get(SESSION_COOKIE),
                person_id=link.person_id,
                invite_id=link.invite_id,
                method="citizen",
                language=notice_language(session, link.person_id),
                now=now,
            )
    if token is not None:
        response = signed_in(request, token)
    else:
        response = start_page(request, citizen=True)
        set_cookie(
            request,
            response,
            PENDING_COOKIE,
            _seal_pending(request, subject),
            max_age=STATE_SECONDS,
        )
    response.delete_cookie(STATE_COOKIE, path=PREFIX)
    return response


def subject_hash(session: Session, claims: dict[str, Any]) -> str:
    """The keyed hash of the login's issuer and subject (no clear identifier is stored)."""
    return digest(session, "citizen", f"{claims['iss']}\n{claims['sub']}").hex()


def pending_subject(request: Request) -> str | None:
    """The subject hash of a citizen login waiting for its first code, if there is one."""
    value = request.cookies.get(PENDING_COOKIE)
    if not value:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        plain = AESGCM(seal_key(request)).decrypt(raw[:12], raw[12:], _PENDING_CONTEXT)
        data = json.loads(plain)
    except (InvalidTag, ValueError, TypeError):
        return None
    if not isinstance(data, dict) or data.get("expires", 0) <= time.time():
        return None
    subject = data.get("subject")
    return subject if isinstance(subject, str) else None


def link(session: Session, *, subject: str, person_id: str, invite_id: str, now: Any) -> None:
    """Link a citizen login to the person whose code was just redeemed (once)."""
    values = {
        "subject_hash": subject,
        "person_id": person_id,
        "invite_id": invite_id,
        "created_at": now,
    }
    insert_if_absent(session, CitizenLink, values)
    record(
        session,
        actor_type="client",
        actor="client",
        action="client.citizen_linked",
        person_id=person_id,
    )


def _seal_pending(request: Request, subject: str) -> str:
    iv = secrets.token_bytes(12)
    plain = json.dumps({"subject": subject, "expires": time.time() + STATE_SECONDS}).encode()
    sealed = iv + AESGCM(seal_key(request)).encrypt(iv, plain, _PENDING_CONTEXT)
    return base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def _refused(request: Request, reason: str) -> None:
    with unit_of_work(request.app.state.session_factory) as session:
        record(
            session,
            actor_type="client",
            actor="anonymous",
            action="client.login_refused",
            details={"method": "citizen", "reason": reason},
        )
