"""Staff pages: a referral with its lifecycle, deadlines and notes; cancelling one; a new
referral made by the Talent Center.

The rules (lifecycle, route policy, consent) are the same services the partner API uses.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.crypto.fields import open_value
from hub.db import unit_of_work
from hub.errors import HubError, NotFound
from hub.partners.models import Partner
from hub.people import visibility
from hub.referrals import service as referrals
from hub.referrals.models import Referral, StaffNote
from hub.web.accounts import Staff
from hub.web.acting import may_see_person, staff_partner, types_staff_may_request
from hub.web.pages import (
    CASE_ROLES,
    PREFIX,
    audit_staff,
    posting,
    render,
    require,
)
from schemas.lifecycle import REASONS, Status
from schemas.messages import PersonIn, ReferralCreate, StatusChange

router = APIRouter(prefix=PREFIX, include_in_schema=False)

_STATES_DRAWN = [
    Status.REQUESTED,
    Status.RECEIVED,
    Status.ACCEPTED,
    Status.IN_PROGRESS,
    Status.ON_HOLD,
    Status.COMPLETED,
]


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
            by = staff_partner(session, request)
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
            if not may_see_person(session, request, staff, person_id):
                raise NotFound(f"no person {person_id} in your purpose domains")
            referral = referrals.request_referral(
                session,
                body=body,
                by=staff_partner(session, request),
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
        if not may_see_person(session, request, staff, person_id):
            raise NotFound(f"no person {person_id} in your purpose domains")
        acting_as = staff_partner(session, request)
        types = types_staff_may_request(session, request, staff)
        rtype = catalogue.types.get(type_id) if type_id in types else None
        performers = []
        if rtype is not None:
            performers = list(
                session.scalars(
                    select(Partner)
                    .where(Partner.active, Partner.kind.in_(rtype.performer))
                    .where(Partner.id != acting_as.id)
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


# ---------------------------------------------------------------------- helpers


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])
