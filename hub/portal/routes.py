"""The portal's pages: sign in with a code, the case, who used my data, a proof per entry.

Every page that shows the client's data is written to the audit log as the client's own
view (actor type ``client``). Nothing personal travels in a URL: the session cookie says
whose case it is, and a proof is asked for by its leaf index, which the page checks
belongs to the signed-in person.
"""

from __future__ import annotations

import secrets
from datetime import date
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from hub.audit.service import record
from hub.db import unit_of_work, utcnow
from hub.portal import access, case, invites, sessions
from hub.portal.pages import (
    LANG_COOKIE,
    PREFIX,
    SESSION_COOKIE,
    START_CSRF_COOKIE,
    FormRefused,
    NotSignedIn,
    check_form,
    client_of,
    language_of,
    notice_language,
    render,
    safe_next,
    set_cookie,
)
from hub.portal.sessions import Client
from hub.portal.words import LANGUAGES, Words
from hub.web.wording import partner_names

router = APIRouter(prefix=PREFIX, include_in_schema=False)

#: Sign-in attempts one address may make per minute (this process; see the README).
ATTEMPTS_PER_MINUTE = 10
MAX_CODE_LENGTH = 40
MAX_DATE_LENGTH = 20


# ---------------------------------------------------------------------- signing in


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    """The case of the signed-in client, or the start page with the code form."""
    with unit_of_work(request.app.state.session_factory) as session:
        now = utcnow()
        try:
            client = client_of(request, session, now)
        except NotSignedIn as exc:
            expired = exc.expired
            client = None
        if client is not None:
            words = Words(language_of(request, client))
            views = case.case_of(
                session,
                client.person_id,
                words=words,
                names=partner_names(session),
                catalogue=request.app.state.catalogue,
                settings=request.app.state.settings,
                now=now,
            )
            _audit_view(session, client, "client.case_viewed", cases=len(views))
    if client is None:
        response = start_page(request, message="start.expired" if expired else None)
        if expired:
            response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response
    return render(request, "case.html", client=client, cases=views, now=now)


def start_page(
    request: Request, *, message: str | None = None, status_code: int = 200, citizen: bool = False
) -> Response:
    """The code form, with a fresh or the existing form token."""
    token = request.cookies.get(START_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = render(
        request,
        "start.html",
        client=None,
        csrf_token=token,
        message=message,
        citizen=citizen,
        citizen_login=_citizen_configured(request),
        status_code=status_code,
    )
    set_cookie(request, response, START_CSRF_COOKIE, token, max_age=3600)
    return response


@router.post("/", response_class=HTMLResponse)
def sign_in(
    request: Request,
    code: str = Form(""),
    birth_date: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    """Open a session for the code and birth date; one answer for every kind of failure."""
    expected = request.cookies.get(START_CSRF_COOKIE)
    if not expected or not secrets.compare_digest(csrf_token.encode(), expected.encode()):
        raise FormRefused
    from hub.portal import citizen

    pending = citizen.pending_subject(request)
    if not code.strip() or not birth_date.strip():
        return start_page(request, message="start.missing", status_code=400, citizen=bool(pending))
    if len(code) > MAX_CODE_LENGTH:
        return start_page(request, message="start.wrong", status_code=400, citizen=bool(pending))
    born = parse_birth_date(birth_date[:MAX_DATE_LENGTH])
    if born is None:
        return start_page(request, message="start.bad_date", status_code=400, citizen=bool(pending))
    address = request.client.host if request.client else "unknown"
    if not request.app.state.client_throttle.allow(address):
        response = start_page(request, message="start.throttled", status_code=429)
        response.headers["Retry-After"] = "60"
        return response
    now = utcnow()
    with unit_of_work(request.app.state.session_factory) as session:
        invite = invites.redeem(session, code=code, birth_date=born, now=now)
        token = None
        if invite is not None:
            language = invite.language or notice_language(session, invite.person_id)
            method = "code"
            if pending is not None:
                citizen.link(
                    session,
                    subject=pending,
                    person_id=invite.person_id,
                    invite_id=invite.id,
                    now=now,
                )
                method = "citizen"
            token = sessions.sign_in(
                session,
                replacing=request.cookies.get(SESSION_COOKIE),
                person_id=invite.person_id,
                invite_id=invite.id,
                method=method,
                language=language,
                now=now,
            )
    if token is None:
        return start_page(request, message="start.wrong", status_code=401, citizen=bool(pending))
    return signed_in(request, token)


def signed_in(request: Request, token: str) -> Response:
    """Send the new session to the case page; forget the start form's token."""
    response = RedirectResponse(PREFIX + "/", status_code=303)
    set_cookie(request, response, SESSION_COOKIE, token, max_age=None, strict=True)
    response.delete_cookie(START_CSRF_COOKIE, path=PREFIX)
    from hub.portal.citizen import PENDING_COOKIE

    response.delete_cookie(PENDING_COOKIE, path=PREFIX)
    return response


def parse_birth_date(text: str) -> date | None:
    """``1990-12-31`` (a date field) or ``31.12.1990`` (typed), else None."""
    value = text.strip()
    try:
        if "." in value:
            day, month, year = (int(part) for part in value.split("."))
            return date(year, month, day)
        return date.fromisoformat(value)
    except ValueError:
        return None


@router.post("/abmelden")
def sign_out(request: Request, csrf_token: str = Form("")) -> Response:
    """End the session (CSRF-checked) and say so."""
    token = request.cookies.get(SESSION_COOKIE)
    with unit_of_work(request.app.state.session_factory) as session:
        client = client_of(request, session, utcnow())
        check_form(client, csrf_token)
        if token:
            sessions.end(session, token=token)
        _audit_view(session, client, "client.logout")
    response = start_page(request, message="start.ended")
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


@router.get("/sprache/{lang}")
def switch_language(request: Request, lang: str, next: str = "") -> Response:
    """Remember the client's language (a cookie) and go back to the page."""
    response = RedirectResponse(safe_next(next), status_code=303)
    if lang in LANGUAGES:
        response.set_cookie(
            LANG_COOKIE,
            lang,
            max_age=365 * 86400,
            path=PREFIX,
            secure=request.app.state.settings.staff_cookie_secure,
            httponly=True,
            samesite="lax",
        )
    return response


# ---------------------------------------------------------------------- who used my data


@router.get("/zugriffe", response_class=HTMLResponse)
def access_list(request: Request) -> Response:
    """Every partner read and staff view of the client's data, newest first."""
    with unit_of_work(request.app.state.session_factory) as session:
        client = client_of(request, session, utcnow())
        words = Words(language_of(request, client))
        entries = access.accesses(
            session,
            client.person_id,
            words=words,
            names=partner_names(session),
            catalogue=request.app.state.catalogue,
            policy=request.app.state.policy,
        )
        _audit_view(session, client, "client.access_viewed", entries=len(entries))
    return render(request, "access.html", client=client, entries=entries)


@router.get("/nachweis/{leaf:int}", response_class=HTMLResponse)
def proof_page(request: Request, leaf: int) -> Response:
    """One entry's inclusion proof against the newest signed checkpoint, with a check."""
    client, proof = _proof_for(request, leaf)
    if proof is None:
        return render(request, "message.html", client=client, message="proof.not_yet")
    return render(request, "proof.html", client=client, proof=proof, leaf=leaf)


@router.get("/nachweis/{leaf:int}.json")
def proof_json(request: Request, leaf: int) -> Response:
    """The same proof as JSON, to check with any tool."""
    _, proof = _proof_for(request, leaf)
    if proof is None:
        return JSONResponse({"detail": "not signed yet"}, status_code=404)
    return JSONResponse(
        proof,
        headers={"Content-Disposition": f'attachment; filename="nachweis-{leaf}.json"'},
    )


def _proof_for(request: Request, leaf: int) -> tuple[Client, dict[str, Any] | None]:
    with unit_of_work(request.app.state.session_factory) as session:
        client = client_of(request, session, utcnow())
        try:
            proof = access.proof_for(session, client.person_id, leaf)
        except access.NotTheirs:
            raise ProofNotFound(client) from None
        if proof is not None:
            _audit_view(session, client, "client.proof_viewed", leaf=leaf)
    return client, proof


class ProofNotFound(Exception):
    """No entry of the signed-in client has this leaf index."""

    def __init__(self, client: Client) -> None:
        super().__init__("no such entry")
        self.client = client


# ---------------------------------------------------------------------- helpers


def _audit_view(session: Session, client: Client, action: str, **details: Any) -> None:
    record(
        session,
        actor_type="client",
        actor="client",
        action=action,
        person_id=client.person_id,
        details=details,
    )


def _citizen_configured(request: Request) -> bool:
    from hub.portal.citizen import configured

    return configured(request.app.state.settings)
