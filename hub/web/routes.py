"""Staff pages: login, client search, the client timeline and referral detail.

Each handler parses, calls services, and renders; the rules (purpose separation, lifecycle,
route policy, consent) are the same services the partner API uses.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.crypto.fields import open_value
from hub.db import unit_of_work, utcnow
from hub.errors import HubError, NotFound
from hub.partners.models import Partner
from hub.people import visibility
from hub.people.models import Person
from hub.referrals import service as referrals
from hub.referrals.models import Referral, StaffNote
from hub.timeline.models import TimelineEntry
from hub.timeline.service import timeline_for_staff, visible_purposes
from hub.web import accounts
from hub.web.accounts import Staff
from hub.web.i18n import LANGUAGES
from hub.web.pages import (
    LANG_COOKIE,
    PREFIX,
    SESSION_COOKIE,
    audit_staff,
    check_csrf,
    posting,
    render,
    require,
    viewing,
)
from schemas.cloudevents import TYPE_PREFIX
from schemas.lifecycle import REASONS, Status
from schemas.messages import PersonIn, ReferralCreate, StatusChange

router = APIRouter(prefix=PREFIX, include_in_schema=False)

LOGIN_CSRF_COOKIE = "hub_login_csrf"
#: Roles that work with clients' personal data (the timeline and referrals).
CASE_ROLES = ("caseworker", "team_lead")
#: Timeline entries a page shows at first, per "show more", and at most (then: filter).
TIMELINE_PAGE = 500
TIMELINE_MOST = 5_000
#: Login attempts one address may make per minute, across all accounts (against spraying).
LOGIN_ATTEMPTS_PER_MINUTE = 10
_STATES_DRAWN = [
    Status.REQUESTED,
    Status.RECEIVED,
    Status.ACCEPTED,
    Status.IN_PROGRESS,
    Status.ON_HOLD,
    Status.COMPLETED,
]


class LoginThrottle:
    """A sliding one-minute window of login attempts per client address (this process)."""

    def __init__(self, per_minute: int) -> None:
        self._per_minute = per_minute
        self._seen: dict[str, deque[float]] = {}

    def allow(self, address: str) -> bool:
        now = time.monotonic()
        window = self._seen.setdefault(address, deque())
        while window and now - window[0] > 60:
            window.popleft()
        if len(window) >= self._per_minute:
            return False
        window.append(now)
        return True


# ---------------------------------------------------------------------- login and language


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "") -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    request.state.login_csrf = token
    response = render(request, "login.html", staff=None, next=_safe_next(next), error=None)
    _set_cookie(request, response, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    email: str = Form(""),
    password: str = Form(""),
    csrf_token: str = Form(""),
    next: str = Form(""),
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    request.state.login_csrf = expected or secrets.token_urlsafe(32)
    if not expected or not secrets.compare_digest(csrf_token, expected):
        return render(request, "csrf.html", staff=None, status_code=403)
    address = request.client.host if request.client else "unknown"
    if not request.app.state.login_throttle.allow(address):
        response = render(
            request,
            "login.html",
            staff=None,
            next=_safe_next(next),
            error="login.throttled",
            status_code=429,
        )
        response.headers["Retry-After"] = "60"
        return response
    now = utcnow()
    with unit_of_work(request.app.state.session_factory) as session:
        old = request.cookies.get(SESSION_COOKIE)
        if old:
            accounts.end_session(session, token=old)
        account = accounts.authenticate(session, email=email, password=password, now=now)
        token = accounts.start_session(session, account=account, now=now) if account else None
        _audit_login(session, account.email if account else "anonymous", ok=bool(account))
    if token is None:
        return render(
            request,
            "login.html",
            staff=None,
            next=_safe_next(next),
            error="login.refused",
            status_code=401,
        )
    redirect = RedirectResponse(_safe_next(next) or f"{PREFIX}/", status_code=303)
    _set_cookie(request, redirect, SESSION_COOKIE, token, max_age=accounts.SESSION_HOURS * 3600)
    redirect.delete_cookie(LOGIN_CSRF_COOKIE, path=PREFIX)
    return redirect


@router.post("/logout")
def logout(request: Request, staff: Staff = Depends(check_csrf)) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    with unit_of_work(request.app.state.session_factory) as session:
        if token:
            accounts.end_session(session, token=token)
        audit_staff(session, staff, "staff.logout")
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


@router.get("/lang/{lang}")
def switch_language(request: Request, lang: str, next: str = "") -> Response:
    response = RedirectResponse(_safe_next(next) or f"{PREFIX}/", status_code=303)
    if lang in LANGUAGES:
        _set_cookie(request, response, LANG_COOKIE, lang, max_age=365 * 86400, http_only=False)
    return response


# ---------------------------------------------------------------------- search


@router.get("/", response_class=HTMLResponse)
def home(request: Request, staff: Staff = Depends(require(*accounts.ROLES))) -> Response:
    if staff.role in CASE_ROLES:
        return RedirectResponse(f"{PREFIX}/search", status_code=303)
    target = {"dpo": "audit", "admin": "partners"}.get(staff.role, "dashboard")
    return RedirectResponse(f"{PREFIX}/{target}", status_code=303)


@router.get("/search", response_class=HTMLResponse)
def search(request: Request, q: str = "", staff: Staff = Depends(require(*CASE_ROLES))) -> Response:
    query = q.strip()[:100]
    results: list[dict[str, Any]] = []
    if query:
        with viewing(
            request,
            staff,
            action="staff.person_search",
            details={"kind": "id" if query.startswith("p_") else "reference"},
        ) as session:
            results = _find_people(session, request, staff, query)
    return render(request, "search.html", staff=staff, q=query, results=results)


def _find_people(
    session: Session, request: Request, staff: Staff, query: str
) -> list[dict[str, Any]]:
    found = visibility.find_people(
        session, query=query, purposes=staff.purposes, catalogue=request.app.state.catalogue
    )
    return [{"id": person_id, "matched_by": matched_by} for person_id, matched_by in found]


def _may_see_person(session: Session, request: Request, staff: Staff, person_id: str) -> bool:
    return visibility.may_see_person(
        session, person_id=person_id, purposes=staff.purposes, catalogue=request.app.state.catalogue
    )


# ---------------------------------------------------------------------- timeline


@router.get("/people/{person_id}", response_class=HTMLResponse)
def person_page(
    request: Request,
    person_id: str,
    order: str = "desc",
    partner: str = "",
    type: str = "",
    purpose: str = "",
    shown: int = TIMELINE_PAGE,
    staff: Staff = Depends(require(*CASE_ROLES)),
) -> Response:
    filters, shown = _timeline_filters(order, partner, type, purpose, shown)
    return _timeline(request, staff, person_id, filters, shown, "person.html")


@router.get("/people/{person_id}/entries", response_class=HTMLResponse)
def person_entries(
    request: Request,
    person_id: str,
    order: str = "desc",
    partner: str = "",
    type: str = "",
    purpose: str = "",
    shown: int = TIMELINE_PAGE,
    staff: Staff = Depends(require(*CASE_ROLES)),
) -> Response:
    """The entry list alone, polled by the page so new events appear without a reload."""
    filters, shown = _timeline_filters(order, partner, type, purpose, shown)
    return _timeline(request, staff, person_id, filters, shown, "_entries.html")


def _timeline_filters(
    order: str, partner: str, event_type: str, purpose: str, shown: int
) -> tuple[dict[str, str], int]:
    """The page's query, normalised (``shown`` in it only past the first page), and how
    many entries to show."""
    shown = min(max(shown, TIMELINE_PAGE), TIMELINE_MOST)
    filters = {
        "order": "asc" if order == "asc" else "desc",
        "partner": partner,
        "type": event_type,
        "purpose": purpose,
        "shown": str(shown) if shown > TIMELINE_PAGE else "",
    }
    return filters, shown


def _timeline(
    request: Request,
    staff: Staff,
    person_id: str,
    filters: dict[str, str],
    shown: int,
    template: str,
) -> Response:
    purpose = filters["purpose"]
    with viewing(
        request,
        staff,
        action="staff.timeline_viewed",
        person_id=person_id,
        purpose=purpose or None,
        details={"purposes": sorted(staff.purposes)},
    ) as session:
        if not _may_see_person(session, request, staff, person_id):
            raise NotFound(f"no person {person_id} in your purpose domains")
        entries = timeline_for_staff(
            session,
            person_id=person_id,
            purposes=staff.purposes,
            partner=filters["partner"] or None,
            event_type=filters["type"] or None,
            purpose=purpose or None,
            newest_first=filters["order"] == "desc",
            limit=shown + 1,  # one more tells whether there is more
        )
        more = len(entries) > shown
        context: dict[str, Any] = {
            "person_id": person_id,
            "entries": [_entry_view(e) for e in entries[:shown]],
            "filters": filters,
            "query": _query(filters),
            "shown": shown,
            "more_query": _query(filters | {"shown": str(shown + TIMELINE_PAGE)})
            if more and shown < TIMELINE_MOST
            else None,
            "more": more,
        }
        if template == "person.html":
            context |= _person_context(session, request, staff, person_id)
    return render(request, template, staff=staff, **context)


def _person_context(
    session: Session, request: Request, staff: Staff, person_id: str
) -> dict[str, Any]:
    person = session.get(Person, person_id)
    visible = visible_purposes(session, person_id=person_id, purposes=staff.purposes)
    refs = visibility.visible_referrals(
        session, person_id=person_id, purposes=staff.purposes, catalogue=request.app.state.catalogue
    )
    partners = list(session.scalars(select(Partner).order_by(Partner.id)))
    name = None
    if person is not None:
        given = open_value(session, person_id, person.given_name)
        family = open_value(session, person_id, person.family_name)
        name = " ".join(v for v in (given, family) if v) or None
    return {
        "name": name,
        "referrals": refs,
        "partners": partners,
        "event_types": {f"{TYPE_PREFIX}{kind}.v1": f"event.{kind}" for kind in _EVENT_KINDS},
        "purposes": sorted(visible),
        "new_types": _types_staff_may_request(session, request, staff),
    }


_EVENT_KINDS = (
    "referral.requested",
    "referral.status-changed",
    "referral.deadline-due",
    "referral.delivered",
    "referral.delivery-failed",
    "consent.granted",
    "consent.withdrawn",
    "person.erased",
)


def _entry_view(entry: TimelineEntry) -> dict[str, Any]:
    short = entry.event_type.removeprefix(TYPE_PREFIX).removesuffix(".v1")
    return {
        "id": entry.id,
        "kind": short,
        "referral_id": entry.referral_id,
        "referral_type": entry.referral_type,
        "source": entry.source_partner,
        "status": entry.status,
        "business_status": entry.business_status,
        "purpose": entry.purpose,
        "legal_basis": entry.legal_basis,
        "occurred_at": entry.occurred_at,
        "recorded_at": entry.recorded_at,
    }


def _query(filters: dict[str, str]) -> str:
    return "&".join(f"{k}={quote(v)}" for k, v in filters.items() if v)


# ---------------------------------------------------------------------- referrals


@router.get("/referrals/{referral_id}", response_class=HTMLResponse)
def referral_page(
    request: Request,
    referral_id: str,
    message: str = "",
    staff: Staff = Depends(require(*CASE_ROLES)),
) -> Response:
    return _referral(request, staff, referral_id, message=message)


def _referral(
    request: Request,
    staff: Staff,
    referral_id: str,
    *,
    message: str = "",
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    settings = request.app.state.settings
    catalogue = request.app.state.catalogue
    with unit_of_work(request.app.state.session_factory) as session:
        referral = _visible_referral(session, request, staff, referral_id)
        rtype = catalogue.types[referral.type]
        audit_staff(
            session,
            staff,
            "staff.referral_viewed",
            person_id=referral.person_id,
            purpose=rtype.purpose,
            details={"referral_id": referral.id},
        )
        clocks = referrals.clocks(session, referral, catalogue=catalogue, settings=settings)
        notes = [
            {
                "author": n.author,
                "at": n.created_at,
                "text": open_value(session, n.person_id, n.text),
            }
            for n in session.scalars(
                select(StaffNote)
                .where(StaffNote.referral_id == referral.id)
                .order_by(StaffNote.created_at)
            )
        ]
        context = {
            "referral": referral,
            "rtype": rtype,
            "history": list(referral.history),
            "clocks": clocks,
            "holds": referrals.holds(session, referral_id=referral.id),
            "payload": referrals.payload_of(session, referral),
            "notes": notes,
            "lifecycle": _lifecycle(referral),
            "ours": referral.requester_id == settings.staff_partner_id,
            "cancellable": referral.requester_id == settings.staff_partner_id
            and referral.status
            not in (
                Status.COMPLETED,
                Status.FAILED,
                Status.REJECTED,
                Status.CANCELLED,
                Status.ENTERED_IN_ERROR,
            ),
            "cancel_reasons": sorted(REASONS[Status.CANCELLED]),
            "message": message,
            "error": error,
        }
    return render(request, "referral.html", staff=staff, status_code=status_code, **context)


def _visible_referral(
    session: Session, request: Request, staff: Staff, referral_id: str
) -> Referral:
    return visibility.visible_referral(
        session,
        referral_id=referral_id,
        purposes=staff.purposes,
        catalogue=request.app.state.catalogue,
    )


def _lifecycle(referral: Referral) -> list[dict[str, Any]]:
    """The main path of the lifecycle with the states passed and the current one marked."""
    passed = {h.status for h in referral.history}
    drawn = list(_STATES_DRAWN)
    if referral.status not in {s.value for s in drawn}:
        drawn.append(Status(referral.status))
    return [
        {"status": s.value, "current": s.value == referral.status, "passed": s.value in passed}
        for s in drawn
    ]


@router.post("/referrals/{referral_id}/notes", response_class=HTMLResponse)
def add_note(
    request: Request,
    referral_id: str,
    text: str = Form(""),
    staff: Staff = Depends(posting(*CASE_ROLES)),
) -> Response:
    text = text.strip()
    if not text or len(text) > 2000:
        return _referral(
            request, staff, referral_id, error="note: 1 to 2000 characters", status_code=422
        )
    from hub.crypto.fields import seal_value

    with unit_of_work(request.app.state.session_factory) as session:
        referral = _visible_referral(session, request, staff, referral_id)
        rtype = request.app.state.catalogue.types[referral.type]
        session.add(
            StaffNote(
                referral_id=referral.id,
                person_id=referral.person_id,
                author=staff.email,
                purpose=rtype.purpose,
                text=seal_value(session, referral.person_id, text) or "",
            )
        )
        audit_staff(
            session,
            staff,
            "staff.note_added",
            person_id=referral.person_id,
            purpose=rtype.purpose,
            details={"referral_id": referral.id},
        )
    return RedirectResponse(f"{PREFIX}/referrals/{referral_id}", status_code=303)


@router.post("/referrals/{referral_id}/cancel", response_class=HTMLResponse)
def cancel(
    request: Request,
    referral_id: str,
    reason: str = Form(""),
    staff: Staff = Depends(posting(*CASE_ROLES)),
) -> Response:
    settings = request.app.state.settings
    try:
        change = StatusChange(status=Status.CANCELLED, reason=reason or None)
        with unit_of_work(request.app.state.session_factory) as session:
            referral = _visible_referral(session, request, staff, referral_id)
            by = _staff_partner(session, request)
            referrals.change_status(
                session,
                referral_id=referral.id,
                change=change,
                by=by,
                catalogue=request.app.state.catalogue,
                policy=request.app.state.policy,
                settings=settings,
            )
            audit_staff(
                session,
                staff,
                "staff.referral_cancelled",
                person_id=referral.person_id,
                details={"referral_id": referral.id},
            )
    except ValidationError as exc:
        return _referral(request, staff, referral_id, error=_first_error(exc), status_code=422)
    except NotFound:
        raise
    except HubError as exc:
        return _referral(request, staff, referral_id, error=exc.detail, status_code=exc.status)
    return RedirectResponse(f"{PREFIX}/referrals/{referral_id}", status_code=303)


@router.get("/people/{person_id}/referrals/new", response_class=HTMLResponse)
def new_referral_form(
    request: Request,
    person_id: str,
    type: str = "",
    staff: Staff = Depends(require(*CASE_ROLES)),
) -> Response:
    return _new_referral(request, staff, person_id, type, values={}, error=None)


@router.post("/people/{person_id}/referrals", response_class=HTMLResponse)
async def create_referral(
    request: Request, person_id: str, staff: Staff = Depends(posting(*CASE_ROLES))
) -> Response:
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    type_id = values.get("type", "")
    rtype = request.app.state.catalogue.types.get(type_id)
    if rtype is None:
        return _new_referral(request, staff, person_id, "", values, "type: unknown", 422)
    payload: dict[str, Any] = {}
    for name, spec in rtype.payload.items():
        raw = values.get(f"payload.{name}", "").strip()
        if spec.type == "boolean":
            payload[name] = raw == "on"
        elif raw:
            payload[name] = raw
    try:
        body = ReferralCreate(
            type=type_id,
            performer=values.get("performer", ""),
            person=PersonIn(id=person_id),
            payload=payload,
        )
        with unit_of_work(request.app.state.session_factory) as session:
            if not _may_see_person(session, request, staff, person_id):
                raise NotFound(f"no person {person_id} in your purpose domains")
            referral = referrals.request_referral(
                session,
                body=body,
                by=_staff_partner(session, request),
                catalogue=request.app.state.catalogue,
                policy=request.app.state.policy,
                settings=request.app.state.settings,
            )
            audit_staff(
                session,
                staff,
                "staff.referral_created",
                person_id=person_id,
                purpose=rtype.purpose,
                details={"referral_id": referral.id},
            )
            rid = referral.id
    except ValidationError as exc:
        return _new_referral(request, staff, person_id, type_id, values, _first_error(exc), 422)
    except NotFound:
        raise
    except HubError as exc:
        return _new_referral(request, staff, person_id, type_id, values, exc.detail, exc.status)
    return RedirectResponse(f"{PREFIX}/referrals/{rid}?message=referral.created", status_code=303)


def _new_referral(
    request: Request,
    staff: Staff,
    person_id: str,
    type_id: str,
    values: dict[str, str],
    error: str | None,
    status_code: int = 200,
) -> Response:
    catalogue = request.app.state.catalogue
    with unit_of_work(request.app.state.session_factory) as session:
        if not _may_see_person(session, request, staff, person_id):
            raise NotFound(f"no person {person_id} in your purpose domains")
        staff_partner = _staff_partner(session, request)
        types = _types_staff_may_request(session, request, staff)
        rtype = catalogue.types.get(type_id) if type_id in types else None
        performers = []
        if rtype is not None:
            performers = list(
                session.scalars(
                    select(Partner)
                    .where(Partner.active, Partner.kind.in_(rtype.performer))
                    .where(Partner.id != staff_partner.id)
                    .order_by(Partner.id)
                )
            )
    return render(
        request,
        "new_referral.html",
        staff=staff,
        status_code=status_code,
        person_id=person_id,
        types=types,
        rtype=rtype,
        performers=performers,
        values=values,
        error=error,
    )


def _types_staff_may_request(session: Session, request: Request, staff: Staff) -> dict[str, Any]:
    """Referral types the Talent Center may send, in the viewer's purpose domains."""
    catalogue = request.app.state.catalogue
    kind = _staff_partner(session, request).kind
    return {
        tid: rt
        for tid, rt in catalogue.types.items()
        if kind in rt.requester and rt.purpose in staff.purposes
    }


def _staff_partner(session: Session, request: Request) -> Partner:
    """The partner in whose name Talent Center staff act (the Amt by default)."""
    pid = request.app.state.settings.staff_partner_id
    partner = session.get(Partner, pid)
    if partner is None:
        raise NotFound(f"the staff partner {pid!r} is not registered")
    return partner


# ---------------------------------------------------------------------- helpers


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])


def _audit_login(session: Session, who: str, *, ok: bool) -> None:
    from hub.audit.service import record

    record(
        session,
        actor_type="staff",
        actor=who,
        action="staff.login" if ok else "staff.login_refused",
    )


def _safe_next(target: str) -> str:
    """Only paths inside the staff UI: an open redirect would help phishing."""
    if target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return ""


def _set_cookie(
    request: Request,
    response: Response,
    name: str,
    value: str,
    *,
    max_age: int,
    http_only: bool = True,
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        secure=request.app.state.settings.staff_cookie_secure,
        httponly=http_only,
        samesite="strict" if name == SESSION_COOKIE else "lax",
    )
