"""Who Talent Center staff are to the services: the partner they act as, the people they
may see and the referral types they may request."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from hub.errors import NotFound
from hub.partners.models import Partner
from hub.people import visibility
from hub.web.accounts import Staff


def may_see_person(session: Session, request: Request, staff: Staff, person_id: str) -> bool:
    """Whether the person has an entry in one of the staff member's purpose domains."""
    return visibility.may_see_person(
        session, person_id=person_id, purposes=staff.purposes, catalogue=request.app.state.catalogue
    )


def types_staff_may_request(session: Session, request: Request, staff: Staff) -> dict[str, Any]:
    """Referral types the Talent Center may send, in the viewer's purpose domains."""
    catalogue = request.app.state.catalogue
    kind = staff_partner(session, request).kind
    return {
        tid: rt
        for tid, rt in catalogue.types.items()
        if kind in rt.requester and rt.purpose in staff.purposes
    }


def staff_partner(session: Session, request: Request) -> Partner:
    """The partner in whose name Talent Center staff act (the Amt by default)."""
    pid = request.app.state.settings.staff_partner_id
    partner = session.get(Partner, pid)
    if partner is None:
        raise NotFound(f"the staff partner {pid!r} is not registered")
    return partner
